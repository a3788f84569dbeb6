//! Building the parts of an atlas: actions, capabilities and policies
//! (context packs are in `packs`), and the item and id checks they share.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::atlas::id_grammar::{is_action_id, is_plain_id};
use crate::atlas::keys::{
    check_keys, check_parameters, closest, did_you_mean, policy_keys, Place, ACTION_KEYS,
    CAPABILITY_KEYS, POLICY_CONDITION_KEYS,
};
use crate::atlas::model::{Action, Capability, TraceMode, TraceSpec};
use crate::atlas::pattern::Pattern;
use crate::atlas::policy::{Limit, Policy, PolicyType, RiskTier, Scope};
use crate::json::canonical::to_canonical;
use crate::json::fields::{at, at_index, type_name, Faults};

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

/// The items of an optional array field, with their paths.
pub(super) fn items<'v>(
    v: Option<&'v Value>,
    base: &str,
    f: &mut Faults,
) -> Vec<(String, &'v Map<String, Value>)> {
    match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .filter_map(|(i, item)| {
                let path = at_index(base, i);
                f.object(item, &path).map(|m| (path, m))
            })
            .collect(),
        Some(other) => {
            f.add(base, format!("must be an array, not {}", type_name(other)));
            Vec::new()
        }
    }
}

/// Checks an id's grammar and uniqueness.
pub(super) fn check_id(
    id: &str,
    path: &str,
    seen: &mut HashSet<String>,
    ok: fn(&str) -> bool,
    what: &str,
    f: &mut Faults,
) {
    if !ok(id) {
        f.add(path, format!("{id:?} is not a valid {what} id"));
    } else if !seen.insert(id.to_string()) {
        f.add(path, format!("duplicate {what} id {id:?}"));
    }
}

/// Set in a risk-tier bit set when the condition was given: `[]` names no
/// tier, so it never holds (0 alone: no condition, every tier).
pub const TIERS_GIVEN: u8 = 0x80;

/// A `risk_tiers` list as a bit set ([`TIERS_GIVEN`] when given).
pub(super) fn tiers(list: Option<Vec<&str>>, path: &str, f: &mut Faults) -> u8 {
    let Some(list) = list else {
        return 0;
    };
    let mut bits = TIERS_GIVEN;
    for (i, t) in list.into_iter().enumerate() {
        match RiskTier::parse(t) {
            Some(r) => bits |= r.bit(),
            None => f.add(
                at_index(path, i),
                format!("{t:?} is not a risk tier (low, medium, high, critical)"),
            ),
        }
    }
    bits
}

pub fn build_actions(v: Option<&Value>, f: &mut Faults) -> Vec<Action> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (path, m) in items(v, "/actions", f) {
        check_keys(m, ACTION_KEYS, Place::Action, &path, f);
        let id = f.req_str(m, "action_id", &path).unwrap_or_default();
        check_id(
            id,
            &at(&path, "action_id"),
            &mut seen,
            is_action_id,
            "action",
            f,
        );
        let name = f.req_str(m, "name", &path).unwrap_or_default();
        let description = f.opt_str(m, "description", &path).unwrap_or_default();
        let risk_tier = match f.opt_str(m, "risk_tier", &path) {
            None => RiskTier::Low,
            Some(t) => RiskTier::parse(t).unwrap_or_else(|| {
                f.add(
                    at(&path, "risk_tier"),
                    format!("{t:?} is not a risk tier (low, medium, high, critical)"),
                );
                RiskTier::Low
            }),
        };
        let (parameters_schema, validator) = schema(m, "parameters_schema", &path, f);
        let (returns_schema, _) = schema(m, "returns_schema", &path, f);
        out.push(Action {
            action_id: Arc::from(id),
            name: Arc::from(name),
            description: Arc::from(description),
            parameters_schema,
            returns_schema,
            risk_tier,
            idempotent: f.opt_bool(m, "idempotent", &path).unwrap_or(false),
            requires_confirmation: f
                .opt_bool(m, "requires_confirmation", &path)
                .unwrap_or(false),
            executor: f.opt_str(m, "executor", &path).map(Arc::from),
            validator,
            trace: trace_spec(m, &path, f),
        });
    }
    out
}

const TRACE_KEYS: &[&str] = &["redact", "trace_parameters", "trace_result"];

/// `redact`, `trace_parameters` and `trace_result` of an action, checked;
/// `None` when all three are absent.
fn trace_spec(m: &Map<String, Value>, base: &str, f: &mut Faults) -> Option<Arc<TraceSpec>> {
    if !TRACE_KEYS.iter().any(|k| m.contains_key(*k)) {
        return None;
    }
    let mode = |key: &str, f: &mut Faults| match f.opt_str(m, key, base) {
        None => TraceMode::Hash,
        Some(name) => TraceMode::parse(name).unwrap_or_else(|| {
            f.add(
                at(base, key),
                format!(
                    "{name:?} is not a trace mode{} (hash, redacted, full)",
                    did_you_mean(name, TraceMode::NAMES)
                ),
            );
            TraceMode::Hash
        }),
    };
    let parameters = mode("trace_parameters", f);
    let result = mode("trace_result", f);
    let list_path = at(base, "redact");
    let redact = match m.get("redact") {
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .filter_map(|(i, item)| {
                let path = at_index(&list_path, i);
                let p = f.as_str(item, &path)?;
                pointer_tokens(p)
                    .map_err(|why| f.add(path, format!("{p:?} is not a JSON pointer: {why}")))
                    .ok()
            })
            .collect(),
        _ => {
            // Absent or null: nothing; any other type: its fault.
            f.opt_str_list(m, "redact", base);
            Vec::new()
        }
    };
    if !redact.is_empty() && parameters != TraceMode::Redacted && result != TraceMode::Redacted {
        // Nothing accepted and ignored: the pointers act only on values
        // recorded as "redacted" ("hash" records none, "full" all as given).
        f.add(
            list_path,
            "applies only to values recorded as \"redacted\": set trace_parameters or \
             trace_result to \"redacted\""
                .to_string(),
        );
    }
    Some(Arc::new(TraceSpec {
        redact,
        parameters,
        result,
    }))
}

/// The reference tokens of a JSON pointer (RFC 6901), unescaped: `""` is
/// the whole value, anything else starts with `/`; `~` must be `~0` or `~1`.
pub fn pointer_tokens(p: &str) -> std::result::Result<Vec<String>, &'static str> {
    if p.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = p.strip_prefix('/') else {
        return Err("it must be empty or start with \"/\"");
    };
    rest.split('/')
        .map(|t| {
            let mut out = String::with_capacity(t.len());
            let mut chars = t.chars();
            while let Some(c) = chars.next() {
                if c != '~' {
                    out.push(c);
                    continue;
                }
                match chars.next() {
                    Some('0') => out.push('~'),
                    Some('1') => out.push('/'),
                    _ => return Err("\"~\" must be followed by 0 or 1"),
                }
            }
            Ok(out)
        })
        .collect()
}

type Schema = (Option<Arc<Value>>, Option<Arc<jsonschema::Validator>>);

/// A JSON Schema field, compiled (an invalid schema is a fault).
fn schema(m: &Map<String, Value>, key: &str, base: &str, f: &mut Faults) -> Schema {
    let Some(s) = m.get(key).filter(|s| !s.is_null()) else {
        return (None, None);
    };
    let path = at(base, key);
    if !matches!(s, Value::Object(_) | Value::Bool(_)) {
        f.add(
            path,
            format!("must be a JSON Schema object, not {}", type_name(s)),
        );
        return (None, None);
    }
    if let Err(e) = jsonschema::meta::validate(s) {
        f.add(path, format!("is not a valid JSON Schema: {e}"));
        return (None, None);
    }
    let checked = if key == "parameters_schema" {
        closed(s)
    } else {
        None
    };
    match jsonschema::validator_for(checked.as_ref().unwrap_or(s)) {
        Ok(v) => (Some(Arc::new(s.clone())), Some(Arc::new(v))),
        Err(e) => {
            f.add(path, format!("is not a valid JSON Schema: {e}"));
            (None, None)
        }
    }
}

/// A parameters schema that names its properties but says nothing of
/// others, closed to them (`additionalProperties: false`): a parameter the
/// action does not declare is refused rather than passed to its executor.
/// `None` when the schema is used as written (it is not such an object
/// schema, or it decides about other properties itself).
fn closed(s: &Value) -> Option<Value> {
    let m = s.as_object()?;
    let open_keys = [
        "additionalProperties",
        "unevaluatedProperties",
        "patternProperties",
    ];
    if !m.contains_key("properties") || open_keys.iter().any(|k| m.contains_key(*k)) {
        return None;
    }
    let mut out = m.clone();
    out.insert("additionalProperties".into(), Value::Bool(false));
    Some(Value::Object(out))
}

pub fn build_capabilities(
    v: Option<&Value>,
    actions: &HashSet<&str>,
    f: &mut Faults,
) -> Vec<Capability> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (path, m) in items(v, "/capabilities", f) {
        check_keys(m, CAPABILITY_KEYS, Place::Capability, &path, f);
        let id = f.req_str(m, "capability_id", &path).unwrap_or_default();
        check_id(
            id,
            &at(&path, "capability_id"),
            &mut seen,
            is_plain_id,
            "capability",
            f,
        );
        let name = f.opt_str(m, "name", &path).unwrap_or(id);
        let description = f.opt_str(m, "description", &path).unwrap_or_default();
        let list = f.opt_str_list(m, "actions", &path).unwrap_or_default();
        for (i, a) in list.iter().enumerate() {
            if !actions.contains(a) {
                let hint = closest(a, actions.iter().copied())
                    .map(|n| format!(" (did you mean {n:?}?)"))
                    .unwrap_or_default();
                f.add(
                    at_index(&at(&path, "actions"), i),
                    format!(
                        "unknown action {a:?}{hint}: a capability names actions of its own atlas"
                    ),
                );
            }
        }
        out.push(Capability {
            capability_id: Arc::from(id),
            name: Arc::from(name),
            description: Arc::from(description),
            actions: list.into_iter().map(Arc::from).collect(),
        });
    }
    out
}

pub fn build_policies(v: Option<&Value>, atlas_id: &Arc<str>, f: &mut Faults) -> Vec<Policy> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (path, m) in items(v, "/policies", f) {
        let id = f.req_str(m, "policy_id", &path).unwrap_or_default();
        check_id(
            id,
            &at(&path, "policy_id"),
            &mut seen,
            is_plain_id,
            "policy",
            f,
        );
        let kind = f.req_str(m, "type", &path).and_then(|t| {
            let k = PolicyType::parse(t);
            if k.is_none() {
                f.add(at(&path, "type"), format!("unknown policy type {t:?} (deny, require_approval, rate_limit, budget, allow)"));
            }
            k
        });
        check_keys(m, &policy_keys(kind), Place::Policy(kind), &path, f);
        let patterns = f.opt_str_list(m, "actions", &path).map(|list| {
            let base = at(&path, "actions");
            list.iter()
                .enumerate()
                .filter_map(|(i, p)| action_pattern(p, &at_index(&base, i), f))
                .collect::<Vec<_>>()
        });
        let (risk_tiers, agent_ids) =
            policy_conditions(m.get("conditions"), &at(&path, "conditions"), f);
        let params = match m.get("parameters") {
            None | Some(Value::Null) => None,
            Some(p) => f.object(p, &at(&path, "parameters")),
        };
        if let (Some(k), Some(p)) = (kind, params) {
            let base = at(&path, "parameters");
            check_parameters(p, k, &base, f);
        }
        let limit = kind
            .map(|k| policy_limit(k, params, &at(&path, "parameters"), f))
            .unwrap_or(Limit::None);
        let reason = f
            .opt_str(m, "reason", &path)
            .or_else(|| params.and_then(|p| p.get("reason")).and_then(Value::as_str))
            .map(str::to_string)
            .unwrap_or_else(|| format!("Denied by policy {id}"));
        let priority = f
            .opt_int(m, "priority", &path, i64::MIN, i64::MAX)
            .unwrap_or(0);
        let parameters_json = params
            .map(|p| to_canonical(&Value::Object(p.clone())).unwrap_or_else(|_| "{}".into()))
            .unwrap_or_else(|| "{}".into());
        let Some(kind) = kind else { continue };
        out.push(Policy {
            policy_id: Arc::from(id),
            atlas_id: Arc::clone(atlas_id),
            key: Arc::from(format!("{atlas_id}/{id}")),
            kind,
            patterns,
            risk_tiers,
            agent_ids,
            limit,
            reason: Arc::from(reason),
            priority,
            parameters_json: Arc::from(parameters_json),
        });
    }
    out
}

fn policy_conditions(v: Option<&Value>, path: &str, f: &mut Faults) -> (u8, Option<Vec<Pattern>>) {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return (0, None);
    };
    let Some(m) = f.object(v, path) else {
        return (0, None);
    };
    check_keys(m, POLICY_CONDITION_KEYS, Place::PolicyConditions, path, f);
    let risk = tiers(
        f.opt_str_list(m, "risk_tiers", path),
        &at(path, "risk_tiers"),
        f,
    );
    let agents = f
        .opt_str_list(m, "agent_ids", path)
        .map(|list| list.into_iter().map(Pattern::compile).collect::<Vec<_>>());
    (risk, agents)
}

fn scope(p: &Map<String, Value>, base: &str, f: &mut Faults) -> Scope {
    match f.opt_str(p, "scope", base) {
        None => Scope::Session,
        Some(s) => Scope::parse(s).unwrap_or_else(|| {
            f.add(
                at(base, "scope"),
                format!("{s:?} is not a scope (session, agent, global)"),
            );
            Scope::Session
        }),
    }
}

fn policy_limit(
    kind: PolicyType,
    params: Option<&Map<String, Value>>,
    base: &str,
    f: &mut Faults,
) -> Limit {
    let empty = Map::new();
    let p = params.unwrap_or(&empty);
    match kind {
        PolicyType::RateLimit => {
            if !p.contains_key("max_calls") {
                f.add(at(base, "max_calls"), "a rate_limit needs max_calls");
            }
            if !p.contains_key("window_seconds") {
                f.add(
                    at(base, "window_seconds"),
                    "a rate_limit needs window_seconds",
                );
            }
            let max_calls = f.opt_int(p, "max_calls", base, 1, i64::MAX).unwrap_or(1) as u64;
            let window = f.opt_number(p, "window_seconds", base, 0.0).unwrap_or(1.0);
            if window <= 0.0 {
                f.add(at(base, "window_seconds"), "must be greater than 0");
            }
            Limit::Rate {
                max_calls,
                window_micros: (window * 1e6).round() as i64,
                window_seconds: window,
                scope: scope(p, base, f),
            }
        }
        PolicyType::Budget => {
            if !p.contains_key("limit") {
                f.add(at(base, "limit"), "a budget needs a limit");
            }
            let limit = f.opt_number(p, "limit", base, 0.0).unwrap_or(0.0);
            let mut costs = Vec::new();
            if let Some(c) = p.get("costs").filter(|c| !c.is_null()) {
                let cbase = at(base, "costs");
                if let Some(cm) = f.object(c, &cbase) {
                    for (pat, cost) in cm {
                        let cpath = at(&cbase, pat);
                        let pattern = action_pattern(pat, &cpath, f);
                        match cost.as_f64().filter(|c| c.is_finite() && *c >= 0.0) {
                            Some(c) => costs.extend(pattern.map(|p| (p, c))),
                            None => f.add(cpath, "a cost must be a number >= 0"),
                        }
                    }
                }
            }
            Limit::Budget {
                limit,
                costs,
                scope: scope(p, base, f),
            }
        }
        _ => Limit::None,
    }
}
