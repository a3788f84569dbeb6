//! Resource limits on atlases, the same on every path an atlas comes by
//! (a file, a directory, a dict, JSON text over HTTP): how deep and how big
//! a manifest may be, how many items it may hold, how much its schemas
//! may cost to compile, and how many candidate actions one resolve may
//! weigh. Checked on the parsed manifest *before* anything is compiled;
//! an atlas over a limit is `ATLAS_TOO_LARGE` (400) at the JSON pointer of
//! the offending place, naming the limit and its value.

use serde_json::Value;

use crate::error::{CoreError, Result};
use crate::json::fields::{at, at_index};

/// The error code of an atlas over a limit.
pub const TOO_LARGE: &str = "ATLAS_TOO_LARGE";

/// The error code of a resolve whose candidate actions are over
/// `max_candidate_actions`.
pub const RESOLUTION_TOO_LARGE: &str = "RESOLUTION_TOO_LARGE";

/// JSON text is read by a parser that stops at 128 levels of nesting, so
/// `max_json_depth` can be at most this.
pub const JSON_DEPTH_CEILING: u64 = 127;

/// The limits. Defaults are generous for hand-written and generated atlases
/// alike (specs/atlas.md §9 gives the reasons); each can be changed per
/// runtime (`cra.Runtime(atlas_limits={...})`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtlasLimits {
    /// Nesting of objects and arrays in the whole manifest (the root object
    /// is level 1).
    pub max_json_depth: u64,
    /// Nesting inside one `parameters_schema` / `returns_schema` (the
    /// schema's own object is level 1).
    pub max_schema_depth: u64,
    /// What compiling the schemas of one atlas costs: each JSON value
    /// (object, array, scalar) of a schema counts its level in it (the
    /// root 1, its members 2, ...), because compile time and memory grow
    /// with the square of nesting (measured: a chain of 63 `not` takes
    /// 0.8 ms and 620 KiB, a flat schema of 3,000 values 2 ms and nearly
    /// nothing), all schemas of the atlas together.
    pub max_schema_cost: u64,
    pub max_actions: u64,
    pub max_policies: u64,
    pub max_context_packs: u64,
    /// The manifest's size as canonical JSON (part files merged), or the
    /// file's size on disk.
    pub max_manifest_bytes: u64,
    /// Context text of all the packs of one atlas (inline and files).
    pub max_context_bytes: u64,
    /// Candidate actions one resolve may weigh (each one is a
    /// `policy.evaluated` event in the trace).
    pub max_candidate_actions: u64,
}

impl Default for AtlasLimits {
    fn default() -> Self {
        AtlasLimits {
            max_json_depth: 100,
            max_schema_depth: 64,
            max_schema_cost: 1_000_000,
            max_actions: 10_000,
            max_policies: 10_000,
            max_context_packs: 1_000,
            max_manifest_bytes: 16 * 1024 * 1024,
            max_context_bytes: 64 * 1024 * 1024,
            max_candidate_actions: 1_000,
        }
    }
}

/// The limits' names, in the order they are documented.
pub const NAMES: [&str; 9] = [
    "max_json_depth",
    "max_schema_depth",
    "max_schema_cost",
    "max_actions",
    "max_policies",
    "max_context_packs",
    "max_manifest_bytes",
    "max_context_bytes",
    "max_candidate_actions",
];

/// `ATLAS_TOO_LARGE` at `path`: what is over which limit.
pub fn too_large(path: impl Into<String>, what: &str, limit: &str, value: u64) -> CoreError {
    CoreError::invalid(TOO_LARGE, path, format!("{what} (limit {limit} = {value})"))
}

impl AtlasLimits {
    /// The limits as `(name, value)` pairs, in `NAMES` order.
    pub fn pairs(&self) -> [(&'static str, u64); 9] {
        let v = [
            self.max_json_depth,
            self.max_schema_depth,
            self.max_schema_cost,
            self.max_actions,
            self.max_policies,
            self.max_context_packs,
            self.max_manifest_bytes,
            self.max_context_bytes,
            self.max_candidate_actions,
        ];
        std::array::from_fn(|i| (NAMES[i], v[i]))
    }

    fn slot(&mut self, name: &str) -> Option<&mut u64> {
        Some(match name {
            "max_json_depth" => &mut self.max_json_depth,
            "max_schema_depth" => &mut self.max_schema_depth,
            "max_schema_cost" => &mut self.max_schema_cost,
            "max_actions" => &mut self.max_actions,
            "max_policies" => &mut self.max_policies,
            "max_context_packs" => &mut self.max_context_packs,
            "max_manifest_bytes" => &mut self.max_manifest_bytes,
            "max_context_bytes" => &mut self.max_context_bytes,
            "max_candidate_actions" => &mut self.max_candidate_actions,
            _ => return None,
        })
    }

    /// Sets one limit by name. An unknown name is `INVALID_OPTION` with
    /// the closest known name; a value must be at least 1 (and
    /// `max_json_depth` at most [`JSON_DEPTH_CEILING`]).
    pub fn set(&mut self, name: &str, value: u64) -> Result<()> {
        let path = at("/atlas_limits", name);
        let Some(slot) = self.slot(name) else {
            let hint = closest(name)
                .map(|c| format!(" (did you mean {c:?}?)"))
                .unwrap_or_else(|| format!(" (known: {})", NAMES.join(", ")));
            return Err(CoreError::invalid(
                "INVALID_OPTION",
                path,
                format!("unknown atlas limit {name:?}{hint}"),
            ));
        };
        if value == 0 {
            return Err(CoreError::invalid(
                "INVALID_OPTION",
                path,
                format!("{name} must be at least 1"),
            ));
        }
        if name == "max_json_depth" && value > JSON_DEPTH_CEILING {
            return Err(CoreError::invalid(
                "INVALID_OPTION",
                path,
                format!("max_json_depth can be at most {JSON_DEPTH_CEILING} (JSON text is not read deeper)"),
            ));
        }
        *slot = value;
        Ok(())
    }

    /// Checks a (merged) manifest against every limit that can be seen in
    /// it, before anything is compiled. One walk; recursion is bounded by
    /// `max_json_depth` (the walk stops at the first level past it).
    pub fn check_manifest(&self, v: &Value) -> Result<()> {
        let mut w = Walk {
            limits: self,
            bytes: 0,
            schema_cost: 0,
        };
        let mut path = String::new();
        w.value(v, &mut path, 1, None)?;
        if w.bytes > self.max_manifest_bytes {
            return Err(too_large(
                "",
                &format!("the manifest is {} bytes as JSON", w.bytes),
                "max_manifest_bytes",
                self.max_manifest_bytes,
            ));
        }
        Ok(())
    }

    /// A file of `len` bytes, checked before it is read.
    pub fn check_file_size(&self, shown: &str, len: u64) -> Result<()> {
        if len > self.max_manifest_bytes {
            return Err(too_large(
                "",
                &format!(
                    "{shown} is larger than {} bytes ({len})",
                    self.max_manifest_bytes
                ),
                "max_manifest_bytes",
                self.max_manifest_bytes,
            ));
        }
        Ok(())
    }
}

/// The known name closest to `name` (edit distance at most 3).
fn closest(name: &str) -> Option<&'static str> {
    NAMES
        .iter()
        .map(|n| (distance(name, n), *n))
        .filter(|(d, _)| *d <= 3)
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

/// The edit distance between two names (also used for "did you mean"
/// hints on action keys, in `parts`).
pub(crate) fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Which counted list a path leads into, at the manifest's top level.
fn list_limit<'a>(limits: &AtlasLimits, key: &'a str) -> Option<(&'static str, u64, &'a str)> {
    match key {
        "actions" => Some(("max_actions", limits.max_actions, "actions")),
        "policies" => Some(("max_policies", limits.max_policies, "policies")),
        "context_packs" => Some((
            "max_context_packs",
            limits.max_context_packs,
            "context packs",
        )),
        _ => None,
    }
}

struct Walk<'a> {
    limits: &'a AtlasLimits,
    /// The manifest's size as compact JSON, counted as it is walked.
    bytes: u64,
    schema_cost: u64,
}

impl Walk<'_> {
    /// `depth`: this value's level (1 = the root); `schema`: the level of
    /// the schema root this value is inside of, if any.
    fn value(
        &mut self,
        v: &Value,
        path: &mut String,
        depth: u64,
        schema: Option<u64>,
    ) -> Result<()> {
        let l = self.limits;
        if let Some(root) = schema {
            let level = depth - root + 1;
            self.schema_cost += level;
            if self.schema_cost > l.max_schema_cost {
                return Err(too_large(
                    path.clone(),
                    &format!(
                        "the schemas of this atlas cost more than {} to compile \
                         (each value counts its level in its schema)",
                        l.max_schema_cost
                    ),
                    "max_schema_cost",
                    l.max_schema_cost,
                ));
            }
            if level > l.max_schema_depth && (v.is_object() || v.is_array()) {
                return Err(too_large(
                    path.clone(),
                    &format!("a schema nested deeper than {} levels", l.max_schema_depth),
                    "max_schema_depth",
                    l.max_schema_depth,
                ));
            }
        }
        match v {
            Value::Object(m) => {
                self.deep(path, depth)?;
                self.bytes += 2 + m.len().saturating_sub(1) as u64;
                for (k, item) in m {
                    self.bytes += k.len() as u64 + 3;
                    let n = path.len();
                    *path = at(path, k);
                    let schema = schema.or_else(|| {
                        (depth == 3
                            && (k == "parameters_schema" || k == "returns_schema")
                            && path.starts_with("/actions/"))
                        .then_some(depth + 1)
                    });
                    self.value(item, path, depth + 1, schema)?;
                    path.truncate(n);
                }
            }
            Value::Array(items) => {
                self.deep(path, depth)?;
                if depth == 2 {
                    if let Some((name, max, what)) = list_limit(l, &path[1..]) {
                        if items.len() as u64 > max {
                            return Err(too_large(
                                path.clone(),
                                &format!("{} {what}, more than {max}", items.len()),
                                name,
                                max,
                            ));
                        }
                    }
                }
                self.bytes += 2 + items.len().saturating_sub(1) as u64;
                for (i, item) in items.iter().enumerate() {
                    let n = path.len();
                    *path = at_index(path, i);
                    self.value(item, path, depth + 1, schema)?;
                    path.truncate(n);
                }
            }
            Value::String(s) => self.bytes += s.len() as u64 + 2,
            Value::Number(n) => self.bytes += n.as_str().len() as u64,
            Value::Bool(true) => self.bytes += 4,
            Value::Bool(false) => self.bytes += 5,
            Value::Null => self.bytes += 4,
        }
        if self.bytes > l.max_manifest_bytes.saturating_mul(2) {
            // Far past the limit already: stop walking (reported as a whole).
            return Err(too_large(
                "",
                &format!(
                    "the manifest is more than {} bytes as JSON",
                    l.max_manifest_bytes
                ),
                "max_manifest_bytes",
                l.max_manifest_bytes,
            ));
        }
        Ok(())
    }

    fn deep(&self, path: &str, depth: u64) -> Result<()> {
        let max = self.limits.max_json_depth;
        if depth > max {
            return Err(too_large(
                path,
                &format!("the manifest is nested deeper than {max} levels"),
                "max_json_depth",
                max,
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nested_not(depth: usize) -> Value {
        let mut s = json!({"type": "string"});
        for _ in 0..depth {
            s = json!({ "not": s });
        }
        s
    }

    fn manifest(actions: Vec<Value>) -> Value {
        json!({"atlas_version": "1.0", "atlas_id": "org.t.a", "version": "1.0.0",
               "name": "A", "actions": actions})
    }

    fn code_path(e: CoreError) -> (String, String, String) {
        (
            e.code().to_string(),
            e.path().unwrap_or_default().to_string(),
            e.to_string(),
        )
    }

    #[test]
    fn a_deep_schema_is_refused_at_its_place() {
        let m = manifest(vec![json!({"action_id": "a.b", "name": "x",
                                     "parameters_schema": nested_not(90)})]);
        let (code, path, msg) = code_path(AtlasLimits::default().check_manifest(&m).unwrap_err());
        assert_eq!(code, TOO_LARGE);
        assert!(
            path.starts_with("/actions/0/parameters_schema/not/not"),
            "{path}"
        );
        assert_eq!(path.matches("/not").count(), 64);
        assert!(msg.contains("max_schema_depth = 64"), "{msg}");
    }

    #[test]
    fn counts_nodes_bytes_and_lists() {
        let acts: Vec<Value> = (0..5)
            .map(|i| {
                json!({"action_id": format!("a.b{i}"), "name": "x",
                            "parameters_schema": nested_not(10)})
            })
            .collect();
        let m = manifest(acts);
        assert!(AtlasLimits::default().check_manifest(&m).is_ok());
        let small = |f: &dyn Fn(&mut AtlasLimits)| {
            let mut l = AtlasLimits::default();
            f(&mut l);
            code_path(l.check_manifest(&m).unwrap_err())
        };
        let (_, path, msg) = small(&|l| l.max_actions = 4);
        assert_eq!(path, "/actions");
        assert!(msg.contains("max_actions = 4"));
        // Each schema: levels 1..=11 (and the leaf string at 12): 78.
        let (_, path, _) = small(&|l| l.max_schema_cost = 78 * 2 + 6);
        assert_eq!(path, "/actions/2/parameters_schema/not/not/not");
        let (_, path, msg) = small(&|l| l.max_manifest_bytes = 100);
        assert_eq!(path, "");
        assert!(msg.contains("max_manifest_bytes = 100"));
        let (_, path, _) = small(&|l| l.max_json_depth = 5);
        assert_eq!(path, "/actions/0/parameters_schema/not/not");
        let exact = serde_json::to_string(&m).unwrap().len() as u64;
        let mut l = AtlasLimits {
            max_manifest_bytes: exact,
            ..AtlasLimits::default()
        };
        assert!(l.check_manifest(&m).is_ok());
        l.max_manifest_bytes = exact - 1;
        assert!(l.check_manifest(&m).is_err());
    }

    #[test]
    fn unknown_names_are_told_the_closest() {
        let mut l = AtlasLimits::default();
        let e = l.set("max_action", 5).unwrap_err();
        assert!(
            e.to_string().contains("did you mean \"max_actions\""),
            "{e}"
        );
        assert!(l.set("max_json_depth", 500).is_err());
        assert!(l.set("max_actions", 0).is_err());
        l.set("max_actions", 5).unwrap();
        assert_eq!(l.max_actions, 5);
    }
}
