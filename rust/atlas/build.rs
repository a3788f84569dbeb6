//! Building an atlas from its manifest (Atlas/1.0): validated, every
//! fault at once with its JSON pointer, and compiled into what resolve
//! needs. Its parts are built in `parts` (actions, capabilities, policies)
//! and `packs` (context packs).

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use crate::atlas::id_grammar::is_atlas_id;
use crate::atlas::keys::{check_keys, Place, MANIFEST_KEYS};
use crate::atlas::limits::AtlasLimits;
use crate::atlas::model::{Atlas, DEFAULT_TTL_SECONDS, MAX_TTL_SECONDS};
use crate::atlas::packs::{build_packs, ContextBudget};
use crate::atlas::parts::{build_actions, build_capabilities, build_policies};
use crate::error::{CoreError, Result};
use crate::json::fields::{at, Faults};

impl Atlas {
    /// Validates and compiles a manifest under the default limits.
    pub fn build(manifest: Arc<Value>, base_dir: Option<&Path>) -> Result<Atlas> {
        Atlas::build_with(manifest, base_dir, &AtlasLimits::default())
    }

    /// Validates and compiles a manifest. The limits are checked first, on
    /// the manifest as given, before any schema is compiled or file read
    /// (`ATLAS_TOO_LARGE`); context files are read from `base_dir` now,
    /// never during resolve.
    pub fn build_with(
        manifest: Arc<Value>,
        base_dir: Option<&Path>,
        limits: &AtlasLimits,
    ) -> Result<Atlas> {
        limits.check_manifest(&manifest)?;
        let mut f = Faults::default();
        let mut budget = ContextBudget::new(limits.max_context_bytes);
        let atlas = build(&manifest, base_dir, &mut budget, &mut f);
        if let Some(e) = budget.over {
            return Err(e);
        }
        match atlas {
            Some(mut a) if f.is_empty() => {
                a.manifest = manifest;
                Ok(a)
            }
            _ => Err(CoreError::AtlasInvalid(f.0)),
        }
    }
}

fn build(
    v: &Value,
    base_dir: Option<&Path>,
    budget: &mut ContextBudget,
    f: &mut Faults,
) -> Option<Atlas> {
    let m = f.object(v, "")?;
    check_keys(m, MANIFEST_KEYS, Place::Manifest, "", f);
    match m.get("atlas_version") {
        Some(Value::String(s)) if s == "1.0" => {}
        Some(other) => f.add("/atlas_version", format!("must be \"1.0\", not {other}")),
        None => f.add("/atlas_version", "is required (\"1.0\")"),
    }
    let atlas_id = f.req_str(m, "atlas_id", "").unwrap_or_default();
    if !atlas_id.is_empty() && !is_atlas_id(atlas_id) {
        f.add(
            "/atlas_id",
            format!("{atlas_id:?} is not a reverse-domain id like \"com.example.support\""),
        );
    }
    let version = f
        .req_str(m, "version", "")
        .and_then(|s| match semver::Version::parse(s) {
            Ok(v) => Some(v),
            Err(e) => {
                f.add(
                    "/version",
                    format!("{s:?} is not a semantic version MAJOR.MINOR.PATCH ({e})"),
                );
                None
            }
        });
    let name = f.req_str(m, "name", "").unwrap_or_default();
    if m.contains_key("name") {
        f.check_len(name, "/name", 1, 100);
    }
    let description = f.opt_str(m, "description", "").unwrap_or_default();
    f.check_len(description, "/description", 0, 1000);
    f.opt_str_list(m, "authors", "");
    f.opt_str(m, "license", "");
    f.opt_str_list(m, "domains", "");
    let ttl = f
        .opt_int(m, "default_ttl_seconds", "", 0, MAX_TTL_SECONDS)
        .map(|n| n as u32)
        .unwrap_or(DEFAULT_TTL_SECONDS);

    let atlas_id: Arc<str> = Arc::from(atlas_id);
    let actions = build_actions(m.get("actions"), f);
    let action_ids: HashSet<&str> = actions.iter().map(|a| &*a.action_id).collect();
    let capabilities = build_capabilities(m.get("capabilities"), &action_ids, f);
    let policies = build_policies(m.get("policies"), &atlas_id, f);
    let packs = build_packs(m.get("context_packs"), base_dir, budget, f);
    let dependencies = build_dependencies(m.get("dependencies"), f);
    Some(Atlas {
        atlas_id,
        version: version?,
        name: name.to_string(),
        description: description.to_string(),
        manifest: Arc::new(Value::Null),
        actions,
        policies,
        capabilities,
        packs,
        default_ttl_seconds: ttl,
        dependencies,
    })
}

fn build_dependencies(v: Option<&Value>, f: &mut Faults) -> Vec<(String, semver::VersionReq)> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Vec::new();
    };
    let Some(m) = f.object(v, "/dependencies") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (id, range) in m {
        let path = at("/dependencies", id);
        if !is_atlas_id(id) {
            f.add(path.clone(), format!("{id:?} is not an atlas id"));
        }
        let Some(range) = f.as_str(range, &path) else {
            continue;
        };
        match semver::VersionReq::parse(range) {
            Ok(req) => out.push((id.clone(), req)),
            Err(e) => f.add(path, format!("{range:?} is not a semver range ({e})")),
        }
    }
    out
}
