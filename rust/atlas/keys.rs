//! The keys the loader reads at each place of a manifest, and the fault for
//! any other one: nothing is accepted and ignored. A key of the upstream
//! CRA atlas that cra does not implement gets a fault saying so and what to
//! write instead; any other unknown key a "did you mean" for a near miss.

use serde_json::{Map, Value};

use crate::atlas::limits::distance;
use crate::atlas::policy::PolicyType;
use crate::json::fields::{at, Faults};

pub const MANIFEST_KEYS: &[&str] = &[
    "atlas_version",
    "atlas_id",
    "version",
    "name",
    "description",
    "authors",
    "license",
    "domains",
    "capabilities",
    "context_packs",
    "policies",
    "actions",
    "dependencies",
    "default_ttl_seconds",
];

pub const ACTION_KEYS: &[&str] = &[
    "action_id",
    "name",
    "description",
    "parameters_schema",
    "returns_schema",
    "risk_tier",
    "idempotent",
    "requires_confirmation",
    "executor",
    "redact",
    "trace_parameters",
    "trace_result",
];

pub const CAPABILITY_KEYS: &[&str] = &["capability_id", "name", "description", "actions"];

pub const PACK_KEYS: &[&str] = &[
    "pack_id",
    "name",
    "description",
    "files",
    "content",
    "content_type",
    "priority",
    "conditions",
];

pub const PACK_CONDITION_KEYS: &[&str] = &["keywords", "risk_tiers", "capabilities"];

/// `reason` is read only from a `deny` policy (`policy_keys`).
const POLICY_KEYS: &[&str] = &[
    "policy_id",
    "type",
    "actions",
    "conditions",
    "parameters",
    "reason",
    "priority",
    "name",
    "description",
];

pub const POLICY_CONDITION_KEYS: &[&str] = &["risk_tiers", "agent_ids"];

/// Where in a manifest a set of keys is checked (for the upstream hints).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Manifest,
    Action,
    Capability,
    Pack,
    PackConditions,
    Policy(Option<PolicyType>),
    PolicyConditions,
    Parameters(PolicyType),
}

/// The keys a policy of this type reads (`None`: the type is unknown, and
/// that is its own fault).
pub fn policy_keys(kind: Option<PolicyType>) -> Vec<&'static str> {
    POLICY_KEYS
        .iter()
        .copied()
        .filter(|k| *k != "reason" || matches!(kind, Some(PolicyType::Deny) | None))
        .collect()
}

/// The keys of a policy's `parameters`, by type (`require_approval`
/// passes its parameters through, `check_parameters`).
pub fn parameter_keys(kind: PolicyType) -> &'static [&'static str] {
    match kind {
        PolicyType::RateLimit => &["max_calls", "window_seconds", "scope"],
        PolicyType::Budget => &["limit", "costs", "scope"],
        PolicyType::Deny => &["reason"],
        PolicyType::RequireApproval | PolicyType::Allow => &[],
    }
}

/// The keys of counting policies, which a `require_approval` policy's
/// parameters may not hold: it counts nothing.
const COUNTING_KEYS: &[&str] = &["max_calls", "window_seconds", "limit", "costs", "scope"];

/// Checks a policy's `parameters`. Those of a `require_approval` policy are
/// returned as written as its constraint's parameters (carp.md §3, step 7),
/// so they may hold any key for the agent or approver to read, except the
/// keys of counting policies, which it would not act on.
pub fn check_parameters(m: &Map<String, Value>, kind: PolicyType, base: &str, f: &mut Faults) {
    if kind != PolicyType::RequireApproval {
        return check_keys(m, parameter_keys(kind), Place::Parameters(kind), base, f);
    }
    for key in m.keys().filter(|k| COUNTING_KEYS.contains(&k.as_str())) {
        f.add(
            at(base, key),
            format!(
                "cra does not support {key:?} on a require_approval policy: it counts nothing \
                 (use a rate_limit or budget policy on the same actions)"
            ),
        );
    }
}

/// The closest of `names` to `given`: edit distance at most 3, or a third
/// of the name's length for long names.
pub fn closest<'a>(given: &str, names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    names
        .into_iter()
        .map(|n| (distance(given, n), n))
        .filter(|(d, n)| *d <= 3.max(n.chars().count() / 3) && *d < given.chars().count().max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

/// ` (did you mean "x"?)` for the closest name, or nothing.
pub fn did_you_mean(given: &str, names: &[&str]) -> String {
    closest(given, names.iter().copied())
        .map(|n| format!(" (did you mean {n:?}?)"))
        .unwrap_or_default()
}

/// A fault at `base/<key>` for every key of `m` not in `allowed`.
pub fn check_keys(
    m: &Map<String, Value>,
    allowed: &[&str],
    place: Place,
    base: &str,
    f: &mut Faults,
) {
    for key in m.keys().filter(|k| !allowed.contains(&k.as_str())) {
        let message = upstream(place, key).unwrap_or_else(|| {
            let keys = if allowed.is_empty() {
                "none".to_string()
            } else {
                allowed.join(", ")
            };
            format!(
                "unknown key {key:?}{}: cra does not read it (keys here: {keys})",
                did_you_mean(key, allowed)
            )
        });
        f.add(at(base, key), message);
    }
}

const CONTEXT_BLOCKS: &str = "cra does not support inline \"context_blocks\": write each block as \
     a context pack with \"content\" (\"context_packs\": [{\"pack_id\": …, \"content\": …}])";

/// The fault of a key of the upstream CRA atlas that cra does not
/// implement, saying what to write instead.
fn upstream(place: Place, key: &str) -> Option<String> {
    let text = match (place, key) {
        (Place::Manifest | Place::Action, "context_blocks") => CONTEXT_BLOCKS.to_string(),
        (Place::Action, "rate_limit") => "cra does not support a per-action \"rate_limit\": use a \
             rate_limit policy ({\"policy_id\": …, \"type\": \"rate_limit\", \"actions\": [<this \
             action id>], \"parameters\": {\"max_calls\": …, \"window_seconds\": …}})"
            .to_string(),
        (Place::Pack, "max_tokens") => "cra does not support \"max_tokens\" on a context pack: \
             every block of a pack is injected whole; keep the pack's text that short, or split \
             it into packs with conditions"
            .to_string(),
        (Place::PolicyConditions, "capabilities") => "cra does not support a \"capabilities\" \
             condition on a policy: name the capability's actions in the policy's \"actions\" \
             patterns"
            .to_string(),
        (Place::PolicyConditions, "time_window") => "cra does not support a \"time_window\" \
             condition: a policy applies at all times; replace the atlas when the rules should \
             change"
            .to_string(),
        (Place::PolicyConditions, "context_matches") => "cra does not support a \
             \"context_matches\" condition: use \"risk_tiers\" or \"agent_ids\" (or context packs' \
             \"keywords\" for context)"
            .to_string(),
        (Place::Policy(Some(PolicyType::RateLimit | PolicyType::Budget)), "scope") => {
            "\"scope\" belongs in \"parameters\": write \"parameters\": {\"scope\": …} \
             (session, agent or global)"
                .to_string()
        }
        (Place::Policy(Some(kind)), "scope") | (Place::Parameters(kind), "scope") => format!(
            "cra does not support \"scope\" on a {} policy: only rate_limit and budget \
             policies count executions, by scope",
            kind.as_str()
        ),
        (Place::Policy(Some(kind)), "reason") => format!(
            "\"reason\" is read only from a deny policy, not a {} one (use \"description\")",
            kind.as_str()
        ),
        (Place::Parameters(kind), _) if parameter_keys(kind).is_empty() => format!(
            "unknown key {key:?}: a {} policy takes no parameters",
            kind.as_str()
        ),
        _ => return None,
    };
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faults(m: Value, allowed: &[&str], place: Place) -> Vec<(String, String)> {
        let mut f = Faults::default();
        check_keys(m.as_object().unwrap(), allowed, place, "/x", &mut f);
        f.0.into_iter().map(|x| (x.path, x.message)).collect()
    }

    #[test]
    fn an_unknown_key_is_a_fault_with_the_closest_name() {
        let out = faults(
            serde_json::json!({"risk_tier": ["low"], "agent_ids": []}),
            POLICY_CONDITION_KEYS,
            Place::PolicyConditions,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, "/x/risk_tier");
        assert!(
            out[0].1.contains("did you mean \"risk_tiers\"?"),
            "{}",
            out[0].1
        );
    }

    #[test]
    fn a_far_key_gets_no_hint_and_upstream_keys_say_what_to_use() {
        let out = faults(serde_json::json!({"zzz": 1}), ACTION_KEYS, Place::Action);
        assert!(!out[0].1.contains("did you mean"), "{}", out[0].1);
        let out = faults(
            serde_json::json!({"rate_limit": {}}),
            ACTION_KEYS,
            Place::Action,
        );
        assert!(out[0].1.contains("use a rate_limit policy"), "{}", out[0].1);
        let out = faults(
            serde_json::json!({"scope": "agent"}),
            &policy_keys(Some(PolicyType::RateLimit)),
            Place::Policy(Some(PolicyType::RateLimit)),
        );
        assert!(
            out[0].1.contains("belongs in \"parameters\""),
            "{}",
            out[0].1
        );
    }

    #[test]
    fn reason_is_read_only_from_deny_policies() {
        assert!(policy_keys(Some(PolicyType::Deny)).contains(&"reason"));
        assert!(!policy_keys(Some(PolicyType::Allow)).contains(&"reason"));
    }

    #[test]
    fn closest_needs_a_near_name() {
        assert_eq!(
            closest("email.sned", ["email.send", "x.y"]),
            Some("email.send")
        );
        assert_eq!(closest("q", ["zz.top"]), None);
    }
}
