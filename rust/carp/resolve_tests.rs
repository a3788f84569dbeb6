//! The resolve algorithm on atlases built from JSON: which policy decides
//! an action, the decision type, its reason and the approval id.

use std::sync::Arc;

use serde_json::{json, Value};
use uuid::Uuid;

use super::{resolve, ResolveInput};
use crate::atlas::model::Atlas;
use crate::atlas::policy::PolicyType;
use crate::atlas::registry::Registry;
use crate::carp::limits::{Limits, ScopeKey};
use crate::carp::request::parse_request;
use crate::carp::resolution::{DecisionType, Outcome, Resolution};

const SESSION: &str = "0190a8c2-0000-7000-8000-000000000001";
const NOW: i64 = 1_700_000_000_000_000;

fn atlas(actions: &[&str], policies: Value) -> Atlas {
    let actions: Vec<Value> = actions
        .iter()
        .map(|a| json!({"action_id": a, "name": a}))
        .collect();
    let manifest = json!({
        "atlas_version": "1.0",
        "atlas_id": "org.test.resolve",
        "version": "1.0.0",
        "name": "Resolve",
        "actions": actions,
        "policies": policies,
    });
    Atlas::build(Arc::new(manifest), None).unwrap()
}

fn request(extra_task: Value) -> Value {
    let mut task = json!({"goal": "Do the work"});
    for (k, v) in extra_task.as_object().unwrap() {
        task[k] = v.clone();
    }
    json!({
        "carp_version": "1.0",
        "request_id": "0190a8c2-0000-7000-8000-0000000000aa",
        "timestamp": "2026-01-01T00:00:00.000000Z",
        "operation": "resolve",
        "requester": {"agent_id": "agent-1", "session_id": SESSION},
        "task": task,
    })
}

fn run_with(a: Atlas, limits: &Limits, task: Value) -> Resolution {
    let registry = Registry::new();
    registry.load(a, false).unwrap();
    let req = parse_request(&request(task)).unwrap();
    let input = ResolveInput {
        snapshot: registry.snapshot(),
        limits,
        now: NOW,
        trace_id: Uuid::nil(),
        max_candidate_actions: 1_000,
    };
    resolve(&input, &req).unwrap()
}

fn run(a: Atlas) -> Resolution {
    run_with(a, &Limits::new(), json!({}))
}

/// `(action, outcome, deciding policy id)` of every evaluation.
fn outcomes(r: &Resolution) -> Vec<(String, &'static str, String)> {
    r.evaluations
        .iter()
        .map(|e| {
            (
                r.action(e).action_id.to_string(),
                e.outcome.as_str(),
                r.policy_id(e).to_string(),
            )
        })
        .collect()
}

fn one(r: &Resolution) -> (&'static str, String) {
    let o = outcomes(r);
    assert_eq!(o.len(), 1);
    (o[0].1, o[0].2.clone())
}

#[test]
fn deny_beats_approval_beats_limits_beats_allow() {
    let r = run(atlas(
        &["x.a"],
        json!([
            {"policy_id": "ok", "type": "allow", "priority": 1000},
            {"policy_id": "ask", "type": "require_approval"},
            {"policy_id": "no", "type": "deny", "priority": -5},
        ]),
    ));
    assert_eq!(one(&r), ("deny", "no".to_string()));
    assert_eq!(r.decision, DecisionType::Deny);
    assert_eq!(r.reason.as_deref(), Some("Denied by policy no"));
    assert_eq!(r.approval_id, None);

    let r = run(atlas(
        &["x.a"],
        json!([
            {"policy_id": "ok", "type": "allow"},
            {"policy_id": "cash", "type": "budget", "parameters": {"limit": 0}},
            {"policy_id": "ask", "type": "require_approval"},
        ]),
    ));
    assert_eq!(one(&r), ("requires_approval", "ask".to_string()));
    assert_eq!(r.decision, DecisionType::RequiresApproval);
    assert_eq!(r.reason.as_deref(), Some("Human approval required"));
    assert!(r.approval_id.is_some());

    // An exhausted budget denies before an allow decides.
    let r = run(atlas(
        &["x.a"],
        json!([
            {"policy_id": "ok", "type": "allow"},
            {"policy_id": "cash", "type": "budget", "parameters": {"limit": 0}},
        ]),
    ));
    assert_eq!(one(&r), ("deny", "cash".to_string()));
    assert_eq!(r.reason.as_deref(), Some("budget_exceeded"));
}

#[test]
fn an_exhausted_rate_limit_denies_before_a_budget_and_an_allow() {
    let a = atlas(
        &["x.a"],
        json!([
            {"policy_id": "ok", "type": "allow"},
            {"policy_id": "cash", "type": "budget", "parameters": {"limit": 0}},
            {"policy_id": "rate", "type": "rate_limit",
             "parameters": {"max_calls": 1, "window_seconds": 60}},
        ]),
    );
    let limits = Limits::new();
    let rate = a.policies.iter().find(|p| &*p.policy_id == "rate").unwrap();
    let key = ScopeKey::Session(Uuid::parse_str(SESSION).unwrap());
    limits.count(rate, &key, "x.a", NOW - 1_000_000);
    let r = run_with(a, &limits, json!({}));
    assert_eq!(one(&r), ("deny", "rate".to_string()));
    assert_eq!(r.reason.as_deref(), Some("rate_limit_exceeded"));
}

#[test]
fn a_rate_limit_with_room_constrains_and_evaluation_goes_on() {
    let r = run(atlas(
        &["x.a", "x.b"],
        json!([
            {"policy_id": "rate", "type": "rate_limit", "actions": ["x.a"],
             "parameters": {"max_calls": 1, "window_seconds": 60}},
            {"policy_id": "ok", "type": "allow", "actions": ["x.a"]},
        ]),
    ));
    // `a` is allowed by `ok` and names its rate limit; `b` has no policy.
    assert_eq!(
        outcomes(&r),
        vec![
            ("x.a".to_string(), "allow", "ok".to_string()),
            ("x.b".to_string(), "deny", "default-deny".to_string()),
        ]
    );
    let e = r.evaluation("x.a").unwrap();
    assert_eq!(e.rate_limit, Some(r.constraints[0]));
    assert_eq!(r.constraints.len(), 1);
    assert_eq!(r.constraint_type(r.constraints[0]), PolicyType::RateLimit);
    assert_eq!(r.decision, DecisionType::Partial);
    assert_eq!(
        r.reason.as_deref(),
        Some("Some actions are denied by policy")
    );
    assert_eq!(r.approval_id, None);
    // A rate limit alone allows nothing.
    let r = run(atlas(
        &["x.a"],
        json!([{"policy_id": "rate", "type": "rate_limit",
                "parameters": {"max_calls": 1, "window_seconds": 60}}]),
    ));
    assert_eq!(one(&r), ("deny", "default-deny".to_string()));
    assert_eq!(r.reason.as_deref(), Some("No policy allows this action"));
}

#[test]
fn priority_within_a_type_then_declaration_order() {
    let r = run(atlas(
        &["x.a"],
        json!([
            {"policy_id": "low", "type": "deny", "priority": 1},
            {"policy_id": "high", "type": "deny", "priority": 5},
            {"policy_id": "high-too", "type": "deny", "priority": 5},
        ]),
    ));
    assert_eq!(one(&r), ("deny", "high".to_string()));
    let r = run(atlas(
        &["x.a"],
        json!([
            {"policy_id": "first", "type": "deny", "reason": "first"},
            {"policy_id": "second", "type": "deny", "reason": "second"},
        ]),
    ));
    assert_eq!(one(&r), ("deny", "first".to_string()));
    assert_eq!(r.reason.as_deref(), Some("first"));
}

#[test]
fn decision_types_and_the_approval_id() {
    // Every action allowed: allow, no reason, no approval id.
    let r = run(atlas(
        &["x.a", "x.b"],
        json!([{"policy_id": "ok", "type": "allow"}]),
    ));
    assert_eq!(r.decision, DecisionType::Allow);
    assert_eq!(r.reason, None);
    assert_eq!(r.approval_id, None);
    // One allowed, one needing approval: partial, with an approval id.
    let r = run(atlas(
        &["x.a", "x.b"],
        json!([
            {"policy_id": "ask", "type": "require_approval", "actions": ["x.b"]},
            {"policy_id": "ok", "type": "allow"},
        ]),
    ));
    assert_eq!(r.decision, DecisionType::Partial);
    assert_eq!(
        r.evaluations.iter().map(|e| e.outcome).collect::<Vec<_>>(),
        vec![Outcome::Allow, Outcome::NeedsApproval]
    );
    assert!(r.approval_id.is_some());
    // Nothing in the atlas: deny with the no-match reason.
    let r = run(atlas(&[], json!([])));
    assert_eq!(r.decision, DecisionType::Deny);
    assert_eq!(r.reason.as_deref(), Some("No actions matched the request"));
    assert_eq!(r.approval_id, None);
}

/// An atlas of actions `x.a`..`x.d` (all allowed) with extra manifest keys
/// (`context_packs`, `capabilities`).
fn atlas_with(extra: Value) -> Atlas {
    let mut manifest = json!({
        "atlas_version": "1.0",
        "atlas_id": "org.test.resolve",
        "version": "1.0.0",
        "name": "Resolve",
        "actions": [
            {"action_id": "x.a", "name": "x.a"},
            {"action_id": "x.b", "name": "x.b"},
            {"action_id": "x.c", "name": "x.c"},
            {"action_id": "x.d", "name": "x.d"},
        ],
        "policies": [{"policy_id": "ok", "type": "allow"}],
    });
    for (k, v) in extra.as_object().unwrap() {
        manifest[k] = v.clone();
    }
    Atlas::build(Arc::new(manifest), None).unwrap()
}

fn try_run(a: Atlas, task: Value) -> crate::error::Result<Resolution> {
    let registry = Registry::new();
    registry.load(a, false).unwrap();
    let req = parse_request(&request(task)).unwrap();
    let limits = Limits::new();
    let input = ResolveInput {
        snapshot: registry.snapshot(),
        limits: &limits,
        now: NOW,
        trace_id: Uuid::nil(),
        max_candidate_actions: 1_000,
    };
    resolve(&input, &req)
}

/// `(block id, pack priority)` of every context block, in order.
fn blocks(r: &Resolution) -> Vec<(String, i64)> {
    r.blocks
        .iter()
        .map(|b| {
            let (block, _, priority) = r.block(b);
            (block.block_id.to_string(), priority)
        })
        .collect()
}

fn actions(r: &Resolution) -> Vec<String> {
    outcomes(r).into_iter().map(|(a, _, _)| a).collect()
}

#[test]
fn context_packs_by_priority_descending_then_declaration_order() {
    let r = run_with(
        atlas_with(json!({"context_packs": [
            {"pack_id": "low", "content": "l", "priority": 1},
            {"pack_id": "mid-a", "content": "a", "priority": 5},
            {"pack_id": "none", "content": "n"},
            {"pack_id": "mid-b", "content": "b", "priority": 5},
            {"pack_id": "high", "content": "h", "priority": 9},
            {"pack_id": "mid-c", "content": "c", "priority": 5},
        ]})),
        &Limits::new(),
        json!({}),
    );
    assert_eq!(
        blocks(&r),
        vec![
            ("high".to_string(), 9),
            ("mid-a".to_string(), 5),
            ("mid-b".to_string(), 5),
            ("mid-c".to_string(), 5),
            ("low".to_string(), 1),
            ("none".to_string(), 0),
        ]
    );
}

#[test]
fn keyword_conditions_ignore_case_in_goal_and_hints() {
    let packs = json!({"context_packs": [
        {"pack_id": "goal-hit", "content": "g", "conditions": {"keywords": ["DePloy"]}},
        {"pack_id": "hint-hit", "content": "h", "conditions": {"keywords": ["RollBack"]}},
        {"pack_id": "unicode", "content": "u", "conditions": {"keywords": ["ÉTÉ"]}},
        {"pack_id": "miss", "content": "m", "conditions": {"keywords": ["absent", "nowhere"]}},
        {"pack_id": "always", "content": "a"},
        {"pack_id": "empty-conditions", "content": "e", "conditions": {}},
    ]});
    let r = run_with(
        atlas_with(packs.clone()),
        &Limits::new(),
        json!({"goal": "Please DEPLOY the été build",
               "context_hints": ["nothing", "a ROLLBACK plan"]}),
    );
    let ids: Vec<String> = blocks(&r).into_iter().map(|(b, _)| b).collect();
    assert_eq!(
        ids,
        vec![
            "goal-hit",
            "hint-hit",
            "unicode",
            "always",
            "empty-conditions"
        ]
    );
    // Nothing matches: only the packs without keywords apply.
    let r = run_with(atlas_with(packs), &Limits::new(), json!({"goal": "idle"}));
    let ids: Vec<String> = blocks(&r).into_iter().map(|(b, _)| b).collect();
    assert_eq!(ids, vec!["always", "empty-conditions"]);
}

#[test]
fn required_capabilities_keep_their_actions_in_declaration_order() {
    let caps = json!({"capabilities": [
        {"capability_id": "write", "actions": ["x.d", "x.b"]},
        {"capability_id": "read", "actions": ["x.c", "x.a"]},
        {"capability_id": "both", "actions": ["x.b", "x.c"]},
    ]});
    let r = run_with(
        atlas_with(caps.clone()),
        &Limits::new(),
        json!({"required_capabilities": ["read"]}),
    );
    assert_eq!(actions(&r), vec!["x.a", "x.c"]);
    assert_eq!(r.decision, DecisionType::Allow);
    // Several capabilities: their union, once each, in declaration order.
    let r = run_with(
        atlas_with(caps.clone()),
        &Limits::new(),
        json!({"required_capabilities": ["both", "write"]}),
    );
    assert_eq!(actions(&r), vec!["x.b", "x.c", "x.d"]);
    // No capabilities: every action.
    let r = run_with(atlas_with(caps.clone()), &Limits::new(), json!({}));
    assert_eq!(actions(&r), vec!["x.a", "x.b", "x.c", "x.d"]);
    // An unknown capability is an error at its index.
    let err = try_run(
        atlas_with(caps),
        json!({"required_capabilities": ["read", "fly", "write"]}),
    )
    .unwrap_err();
    assert_eq!(err.code(), "INVALID_REQUEST");
    assert_eq!(err.path(), Some("/task/required_capabilities/1"));
    assert_eq!(err.faults().len(), 1);
}

#[test]
fn token_estimate_is_utf8_bytes_over_four_rounded_up() {
    let r = run_with(
        atlas_with(json!({"context_packs": [
            // 11 characters, 13 bytes.
            {"pack_id": "accents", "content": "héllo wörld", "priority": 4},
            // 8 characters, 24 bytes.
            {"pack_id": "cjk", "content": "日本語のテキスト", "priority": 3},
            {"pack_id": "four", "content": "abcd", "priority": 2},
            {"pack_id": "five", "content": "abcde", "priority": 1},
        ]})),
        &Limits::new(),
        json!({}),
    );
    let estimates: Vec<(String, u64)> = r
        .blocks
        .iter()
        .map(|b| {
            let block = r.block(b).0;
            (block.block_id.to_string(), block.token_estimate)
        })
        .collect();
    assert_eq!(
        estimates,
        vec![
            ("accents".to_string(), 4),
            ("cjk".to_string(), 6),
            ("four".to_string(), 1),
            ("five".to_string(), 2),
        ]
    );
}
