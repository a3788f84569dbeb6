//! Rate windows and budgets: the edges a Python test would only see as an
//! off-by-one somewhere in a resolve or execute.

use std::sync::Arc;

use serde_json::json;
use uuid::Uuid;

use super::{Limits, ScopeKey, SlidingWindow, Standing};
use crate::atlas::model::Atlas;
use crate::atlas::policy::{Limit, Policy, Scope};

const SEC: i64 = 1_000_000;

/// The policies of an atlas with one action per id and `policies` as given.
fn policies(policies: serde_json::Value) -> Vec<Policy> {
    let manifest = json!({
        "atlas_version": "1.0",
        "atlas_id": "org.test.limits",
        "version": "1.0.0",
        "name": "Limits",
        "actions": [
            {"action_id": "credit.use", "name": "Use"},
            {"action_id": "credit.bulk", "name": "Bulk"},
            {"action_id": "api.call", "name": "Call"},
        ],
        "policies": policies,
    });
    Atlas::build(Arc::new(manifest), None).unwrap().policies
}

fn scope_of(p: &Policy) -> Scope {
    match &p.limit {
        Limit::Rate { scope, .. } | Limit::Budget { scope, .. } => *scope,
        Limit::None => panic!("{} has no scope", p.policy_id),
    }
}

fn rate(max_calls: u64, window_seconds: u64, scope: &str) -> Policy {
    policies(json!([{
        "policy_id": "rate", "type": "rate_limit", "actions": ["api.call"],
        "parameters": {"max_calls": max_calls, "window_seconds": window_seconds, "scope": scope},
    }]))
    .remove(0)
}

fn budget(limit: f64) -> Policy {
    policies(json!([{
        "policy_id": "credits", "type": "budget", "actions": ["credit.*"],
        "parameters": {"limit": limit, "costs": {"credit.bulk": 5}, "scope": "session"},
    }]))
    .remove(0)
}

#[test]
fn a_call_exactly_one_window_later_has_room_again() {
    let p = rate(2, 10, "session");
    let limits = Limits::new();
    let key = ScopeKey::Session(Uuid::nil());
    let t0 = 1_000 * SEC;
    limits.count(&p, &key, "api.call", t0);
    limits.count(&p, &key, "api.call", t0 + 3 * SEC);
    // Full: room again when the oldest call leaves the window, 10 s after it.
    assert_eq!(
        limits.standing(&p, &key, "api.call", t0 + 4 * SEC),
        Standing::RateExceeded {
            retry_after: 6 * SEC
        }
    );
    assert_eq!(
        limits.standing(&p, &key, "api.call", t0 + 10 * SEC - 1),
        Standing::RateExceeded { retry_after: 1 }
    );
    // At exactly the window's end the oldest call no longer counts.
    assert_eq!(
        limits.standing(&p, &key, "api.call", t0 + 10 * SEC),
        Standing::Ok
    );
}

#[test]
fn scopes_are_counted_separately() {
    let session = rate(1, 60, "session");
    let agent = rate(1, 60, "agent");
    let global = rate(1, 60, "global");
    let (s1, s2) = (Uuid::from_u128(1), Uuid::from_u128(2));
    assert_eq!(
        ScopeKey::of(scope_of(&session), s1, "a"),
        ScopeKey::Session(s1)
    );
    assert_eq!(
        ScopeKey::of(scope_of(&agent), s1, "a"),
        ScopeKey::Agent(Arc::from("a"))
    );
    assert_eq!(ScopeKey::of(scope_of(&global), s1, "a"), ScopeKey::Global);

    let limits = Limits::new();
    let now = 100 * SEC;
    limits.count(
        &session,
        &ScopeKey::of(scope_of(&session), s1, "a"),
        "api.call",
        now,
    );
    let full = Standing::RateExceeded {
        retry_after: 60 * SEC,
    };
    assert_eq!(
        limits.standing(&session, &ScopeKey::Session(s1), "api.call", now),
        full
    );
    assert_eq!(
        limits.standing(&session, &ScopeKey::Session(s2), "api.call", now),
        Standing::Ok
    );

    limits.count(
        &agent,
        &ScopeKey::of(scope_of(&agent), s1, "a"),
        "api.call",
        now,
    );
    // Another session of the same agent is full; another agent is not.
    let same_agent = ScopeKey::of(scope_of(&agent), s2, "a");
    assert_eq!(limits.standing(&agent, &same_agent, "api.call", now), full);
    let other_agent = ScopeKey::of(scope_of(&agent), s1, "b");
    assert_eq!(
        limits.standing(&agent, &other_agent, "api.call", now),
        Standing::Ok
    );

    // A global limit is one counter for everyone; counters are per policy
    // key, so the session and agent counts above do not fill it.
    assert_eq!(
        limits.standing(&global, &ScopeKey::Global, "api.call", now),
        Standing::Ok
    );
    limits.count(
        &global,
        &ScopeKey::of(scope_of(&global), s2, "z"),
        "api.call",
        now,
    );
    assert_eq!(
        limits.standing(
            &global,
            &ScopeKey::of(scope_of(&global), s1, "a"),
            "api.call",
            now
        ),
        full
    );
}

#[test]
fn budget_costs_by_pattern_with_a_default_of_one() {
    let p = budget(7.0);
    assert_eq!(p.cost_of("credit.bulk"), 5.0);
    assert_eq!(p.cost_of("credit.use"), 1.0);
    let limits = Limits::new();
    let key = ScopeKey::Session(Uuid::nil());
    limits.count(&p, &key, "credit.bulk", 0);
    limits.count(&p, &key, "credit.use", 0);
    // 6 of 7 spent: one more use fits, a bulk (5) does not.
    assert_eq!(limits.standing(&p, &key, "credit.use", 0), Standing::Ok);
    assert_eq!(
        limits.standing(&p, &key, "credit.bulk", 0),
        Standing::BudgetExceeded {
            spent: 6.0,
            limit: 7.0
        }
    );
    // A first bulk over an empty but small budget is refused before any count.
    // (Counters are keyed by atlas/policy id: a fresh `Limits` for it.)
    let small = budget(4.0);
    assert_eq!(
        Limits::new().standing(&small, &key, "credit.bulk", 0),
        Standing::BudgetExceeded {
            spent: 0.0,
            limit: 4.0
        }
    );
}

#[test]
fn a_refused_acquire_counts_nothing() {
    let r = rate(1, 60, "session");
    let b = budget(2.0);
    let key = ScopeKey::Session(Uuid::nil());
    let limits = Limits::new();
    // The rate has room, the budget does not (bulk costs 5): refused by the
    // second limit, and the rate's slot is not taken.
    let refused = limits
        .acquire(&[(&r, key.clone()), (&b, key.clone())], "credit.bulk", 0)
        .unwrap();
    assert_eq!(
        refused.unwrap_err(),
        (
            1,
            Standing::BudgetExceeded {
                spent: 0.0,
                limit: 2.0
            }
        )
    );
    assert_eq!(limits.standing(&r, &key, "api.call", 0), Standing::Ok);
    let taken = limits
        .acquire(&[(&r, key.clone()), (&b, key.clone())], "credit.use", SEC)
        .unwrap();
    assert!(taken.is_ok());
    assert_eq!(
        limits.standing(&r, &key, "api.call", SEC),
        Standing::RateExceeded {
            retry_after: 60 * SEC
        }
    );
    // Released: the slot and the cost come back.
    limits.release(taken.unwrap());
    assert_eq!(limits.standing(&r, &key, "api.call", SEC), Standing::Ok);
    assert_eq!(limits.standing(&b, &key, "credit.use", SEC), Standing::Ok);
    limits.count(&b, &key, "credit.use", SEC);
    limits.count(&b, &key, "credit.use", SEC);
    assert_eq!(
        limits.standing(&b, &key, "credit.use", SEC),
        Standing::BudgetExceeded {
            spent: 2.0,
            limit: 2.0
        }
    );
}

#[test]
fn the_sliding_window_on_its_own() {
    let w = SlidingWindow::new(2, 10 * SEC);
    assert_eq!(w.acquire("k", 0), Ok(()));
    assert_eq!(w.acquire("k", 4 * SEC), Ok(()));
    // Refused, not counted: the retry time stays tied to the oldest call.
    assert_eq!(w.acquire("k", 5 * SEC), Err(5 * SEC));
    assert_eq!(w.acquire("k", 6 * SEC), Err(4 * SEC));
    assert_eq!(w.remaining("k", 6 * SEC), 0);
    assert_eq!(w.retry_after("k", 6 * SEC), 4 * SEC);
    assert_eq!(w.remaining("other", 6 * SEC), 2);
    // At exactly 10 s the first call has left the window.
    assert_eq!(w.retry_after("k", 10 * SEC), 0);
    assert_eq!(w.remaining("k", 10 * SEC), 1);
    assert_eq!(w.acquire("k", 10 * SEC), Ok(()));
    assert_eq!(w.acquire("k", 10 * SEC), Err(4 * SEC));
}
