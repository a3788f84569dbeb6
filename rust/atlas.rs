//! Atlas/1.0: a versioned package of actions, policies and context,
//! validated (every fault at once, each with its JSON pointer) and
//! compiled into what resolve needs.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use memchr::memmem::Finder;
use serde_json::Value;

use crate::atlas_parts::{build_actions, build_capabilities, build_packs, build_policies};
use crate::error::{CoreError, Result};
use crate::fields::{at, Faults};
use crate::ids_check::is_atlas_id;
use crate::pattern::Pattern;
use crate::policy::{Policy, RiskTier};

pub const DEFAULT_TTL_SECONDS: u32 = 3600;
pub const MAX_TTL_SECONDS: i64 = 86_400;

#[derive(Debug)]
pub struct Action {
    pub action_id: Arc<str>,
    pub name: Arc<str>,
    pub description: Arc<str>,
    pub parameters_schema: Option<Arc<Value>>,
    pub returns_schema: Option<Arc<Value>>,
    pub risk_tier: RiskTier,
    pub idempotent: bool,
    pub requires_confirmation: bool,
    pub executor: Option<Arc<str>>,
    /// The compiled `parameters_schema`, kept for execute.
    pub validator: Option<Arc<jsonschema::Validator>>,
}

#[derive(Debug)]
pub struct Capability {
    pub capability_id: Arc<str>,
    pub name: Arc<str>,
    pub description: Arc<str>,
    pub actions: Vec<Arc<str>>,
}

/// One context block as it is injected.
#[derive(Debug, Clone)]
pub struct Block {
    pub block_id: Arc<str>,
    pub content_type: Arc<str>,
    pub content: Arc<str>,
    pub token_estimate: u64,
}

#[derive(Debug)]
pub struct ContextPack {
    pub pack_id: Arc<str>,
    pub name: Arc<str>,
    pub priority: i64,
    pub blocks: Vec<Block>,
    /// Lower-cased keywords, each compiled into a substring finder at load;
    /// `None`: no keyword condition.
    pub keywords: Option<Vec<Finder<'static>>>,
    pub risk_tiers: u8,
    pub capabilities: Option<Vec<String>>,
}

#[derive(Debug)]
pub struct Atlas {
    pub atlas_id: Arc<str>,
    pub version: semver::Version,
    pub name: String,
    pub description: String,
    /// The merged manifest as loaded (directory parts folded in).
    pub manifest: Arc<Value>,
    pub actions: Vec<Action>,
    pub policies: Vec<Policy>,
    pub capabilities: Vec<Capability>,
    pub packs: Vec<ContextPack>,
    pub default_ttl_seconds: u32,
    pub dependencies: Vec<(String, semver::VersionReq)>,
}

impl Atlas {
    /// Validates and compiles a manifest. Context files are read from
    /// `base_dir` now, never during resolve.
    pub fn build(manifest: Arc<Value>, base_dir: Option<&Path>) -> Result<Atlas> {
        let mut f = Faults::default();
        let atlas = build(&manifest, base_dir, &mut f);
        match atlas {
            Some(mut a) if f.is_empty() => {
                a.manifest = manifest;
                Ok(a)
            }
            _ => Err(CoreError::AtlasInvalid(f.0)),
        }
    }

    pub fn action(&self, action_id: &str) -> Option<&Action> {
        self.actions.iter().find(|a| &*a.action_id == action_id)
    }
}

fn build(v: &Value, base_dir: Option<&Path>, f: &mut Faults) -> Option<Atlas> {
    let m = f.object(v, "")?;
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
    let packs = build_packs(m.get("context_packs"), base_dir, f);
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

/// A compiled pattern or a fault.
pub fn action_pattern(text: &str, path: &str, f: &mut Faults) -> Option<Pattern> {
    let p = Pattern::action(text);
    if p.is_none() {
        f.add(
            path,
            format!(
                "{text:?} is not a valid action pattern (dot-separated a-z, 0-9, _ and * only)"
            ),
        );
    }
    p
}
