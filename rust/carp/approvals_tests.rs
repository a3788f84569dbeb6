//! Approvals: what a grant covers and for how long, what a rejection
//! does, expiry with the resolution, and what the bounds refuse (per session,
//! and in all) without ever dropping a live approval.

use std::sync::Arc;

use uuid::Uuid;

use super::{Approvals, Gate, GrantScope, Pending, MAX_PENDING_PER_SESSION};
use crate::error::CoreError;

const APPROVAL: Uuid = Uuid::from_u128(1);
const SESSION: Uuid = Uuid::from_u128(1000);
const RESOLUTION: Uuid = Uuid::from_u128(2000);
const EXPIRES: i64 = 1_000;

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn pending(action: &str, hash: &str, at: i64) -> Pending {
    Pending {
        approval_id: APPROVAL,
        session_id: SESSION,
        resolution_id: RESOLUTION,
        action_id: Arc::from(action),
        parameters_hash: hash.to_string(),
        parameters: Arc::from("{}"),
        requested_at: at,
    }
}

fn opened() -> Approvals {
    let a = Approvals::new(10);
    a.open(APPROVAL, SESSION, RESOLUTION, EXPIRES, 0).unwrap();
    a
}

/// `(action, hash, requested_at)` of what waits, oldest first.
fn waiting(a: &Approvals, now: i64) -> Vec<(String, String, i64)> {
    a.pending(None, now)
        .unwrap()
        .into_iter()
        .map(|p| (p.action_id.to_string(), p.parameters_hash, p.requested_at))
        .collect()
}

fn w(action: &str, hash: &str, at: i64) -> (String, String, i64) {
    (action.to_string(), hash.to_string(), at)
}

#[test]
fn a_once_grant_covers_that_action_with_those_parameters_once() {
    let a = opened();
    assert_eq!(a.gate(pending("x", "h1", 10), 10).unwrap(), Gate::Waiting);
    let d = a
        .approve(
            &APPROVAL,
            "ops",
            Some("ok"),
            Some("x"),
            Some("h1"),
            GrantScope::Once,
            10,
        )
        .unwrap();
    assert_eq!(
        (
            d.approval_id,
            d.session_id,
            d.resolution_id,
            d.action_id.as_deref(),
            d.parameters_hash.as_deref(),
            d.scope,
            d.approver.as_str(),
            d.note.as_deref(),
            d.granted
        ),
        (
            APPROVAL,
            SESSION,
            RESOLUTION,
            Some("x"),
            Some("h1"),
            GrantScope::Once,
            "ops",
            Some("ok"),
            true
        )
    );
    // Other parameters, another action: still waiting.
    assert_eq!(a.gate(pending("x", "h2", 11), 11).unwrap(), Gate::Waiting);
    assert_eq!(a.gate(pending("y", "h1", 12), 12).unwrap(), Gate::Waiting);
    assert_eq!(
        waiting(&a, 12),
        vec![w("x", "h1", 10), w("x", "h2", 11), w("y", "h1", 12)]
    );
    // The granted one runs once and leaves the pending list.
    assert_eq!(a.gate(pending("x", "h1", 13), 13).unwrap(), Gate::Granted);
    assert_eq!(waiting(&a, 13), vec![w("x", "h2", 11), w("y", "h1", 12)]);
    // A second use waits again.
    assert_eq!(a.gate(pending("x", "h1", 14), 14).unwrap(), Gate::Waiting);
    assert_eq!(
        waiting(&a, 14),
        vec![w("x", "h2", 11), w("y", "h1", 12), w("x", "h1", 14)]
    );
    // A grant given back (the execution did not run) covers one more.
    a.restore(&APPROVAL, "x", "h1");
    assert_eq!(a.gate(pending("x", "h1", 15), 15).unwrap(), Gate::Granted);
    assert_eq!(a.gate(pending("x", "h1", 16), 16).unwrap(), Gate::Waiting);
}

#[test]
fn a_once_grant_of_the_only_pending_execution_needs_no_names() {
    let a = opened();
    assert_eq!(a.gate(pending("x", "h1", 10), 10).unwrap(), Gate::Waiting);
    // The same execution gated twice is listed once.
    assert_eq!(a.gate(pending("x", "h1", 11), 11).unwrap(), Gate::Waiting);
    assert_eq!(waiting(&a, 11), vec![w("x", "h1", 10)]);
    let d = a
        .approve(&APPROVAL, "ops", None, None, None, GrantScope::Once, 11)
        .unwrap();
    assert_eq!(
        (d.action_id.as_deref(), d.parameters_hash.as_deref()),
        (Some("x"), Some("h1"))
    );
    assert_eq!(a.gate(pending("x", "h2", 12), 12).unwrap(), Gate::Waiting);
    assert_eq!(a.gate(pending("x", "h1", 12), 12).unwrap(), Gate::Granted);
    // Two waiting now: naming none is ambiguous.
    assert_eq!(a.gate(pending("x", "h3", 13), 13).unwrap(), Gate::Waiting);
    let err = a
        .approve(&APPROVAL, "ops", None, None, None, GrantScope::Once, 13)
        .unwrap_err();
    assert_eq!(
        (err.code(), err.path()),
        ("APPROVAL_AMBIGUOUS", Some("/action_id"))
    );
}

#[test]
fn a_resolution_grant_covers_the_action_with_any_parameters() {
    let a = opened();
    assert_eq!(a.gate(pending("x", "h1", 10), 10).unwrap(), Gate::Waiting);
    let d = a
        .approve(
            &APPROVAL,
            "ops",
            None,
            Some("x"),
            None,
            GrantScope::Resolution,
            10,
        )
        .unwrap();
    // The decision names what was pending; the grant is not tied to it.
    assert_eq!(
        (
            d.action_id.as_deref(),
            d.parameters_hash.as_deref(),
            d.scope
        ),
        (Some("x"), Some("h1"), GrantScope::Resolution)
    );
    for (n, hash) in ["h1", "h2", "h1", "h3"].into_iter().enumerate() {
        let t = 11 + n as i64;
        assert_eq!(
            a.gate(pending("x", hash, t), t).unwrap(),
            Gate::Granted,
            "{hash}"
        );
    }
    assert_eq!(a.gate(pending("y", "h1", 20), 20).unwrap(), Gate::Waiting);
    assert_eq!(waiting(&a, 20), vec![w("y", "h1", 20)]);
    // Granted with nothing pending: the action alone, no hash.
    let d = a
        .approve(
            &APPROVAL,
            "ops",
            None,
            Some("z"),
            None,
            GrantScope::Resolution,
            21,
        )
        .unwrap();
    assert_eq!(
        (d.action_id.as_deref(), d.parameters_hash.as_deref()),
        (Some("z"), None)
    );
    assert_eq!(a.gate(pending("z", "any", 22), 22).unwrap(), Gate::Granted);
    // A once grant with nothing pending needs the parameters hash.
    let err = a
        .approve(
            &APPROVAL,
            "ops",
            None,
            Some("q"),
            None,
            GrantScope::Once,
            23,
        )
        .unwrap_err();
    assert_eq!(err.code(), "APPROVAL_NOT_PENDING");
}

#[test]
fn a_rejection_denies_every_gated_action_from_then_on() {
    let a = opened();
    a.approve(
        &APPROVAL,
        "ops",
        None,
        Some("x"),
        None,
        GrantScope::Resolution,
        5,
    )
    .unwrap();
    assert_eq!(a.gate(pending("y", "h1", 10), 10).unwrap(), Gate::Waiting);
    assert_eq!(a.gate(pending("y", "h2", 11), 11).unwrap(), Gate::Waiting);
    let (d, was_waiting) = a.reject(&APPROVAL, "boss", Some("no"), 12).unwrap();
    assert_eq!(
        (
            d.action_id.as_deref(),
            d.parameters_hash.as_deref(),
            d.approver.as_str(),
            d.note.as_deref(),
            d.granted
        ),
        (Some("y"), Some("h1"), "boss", Some("no"), false)
    );
    assert_eq!(
        was_waiting
            .iter()
            .map(|p| (p.action_id.to_string(), p.parameters_hash.clone()))
            .collect::<Vec<_>>(),
        vec![
            ("y".to_string(), "h1".to_string()),
            ("y".to_string(), "h2".to_string())
        ]
    );
    let rejected = Gate::Rejected {
        approver: "boss".to_string(),
    };
    // Even the action granted before the rejection.
    assert_eq!(a.gate(pending("x", "h1", 13), 13).unwrap(), rejected);
    assert_eq!(a.gate(pending("y", "h1", 13), 13).unwrap(), rejected);
    assert_eq!(waiting(&a, 13), vec![]);
    let err = a
        .approve(
            &APPROVAL,
            "ops",
            None,
            Some("x"),
            None,
            GrantScope::Resolution,
            14,
        )
        .unwrap_err();
    assert_eq!(err.code(), "APPROVAL_REJECTED");
}

#[test]
fn approvals_expire_with_their_resolution() {
    let a = opened();
    a.approve(
        &APPROVAL,
        "ops",
        None,
        Some("x"),
        None,
        GrantScope::Resolution,
        10,
    )
    .unwrap();
    assert_eq!(
        a.gate(pending("x", "h", EXPIRES - 1), EXPIRES - 1).unwrap(),
        Gate::Granted
    );
    assert_eq!(
        a.gate(pending("y", "h", EXPIRES - 1), EXPIRES - 1).unwrap(),
        Gate::Waiting
    );
    assert_eq!(waiting(&a, EXPIRES - 1), vec![w("y", "h", EXPIRES - 1)]);
    // At expires_at exactly, the grant is gone and nothing is listed.
    assert_eq!(
        a.gate(pending("x", "h", EXPIRES), EXPIRES).unwrap(),
        Gate::Waiting
    );
    assert_eq!(waiting(&a, EXPIRES), vec![]);
    let err = a
        .approve(
            &APPROVAL,
            "ops",
            None,
            Some("x"),
            Some("h"),
            GrantScope::Once,
            EXPIRES,
        )
        .unwrap_err();
    assert!(matches!(err, CoreError::ApprovalExpired(_)), "{err:?}");
    let err = a.reject(&APPROVAL, "ops", None, EXPIRES + 1).unwrap_err();
    assert!(matches!(err, CoreError::ApprovalExpired(_)), "{err:?}");
    // An approval never opened is not found.
    let err = a.reject(&id(77), "ops", None, 0).unwrap_err();
    assert!(matches!(err, CoreError::ApprovalNotFound(_)), "{err:?}");
}

#[test]
fn the_bound_refuses_the_new_one_and_keeps_the_first_opened() {
    let a = Approvals::new(2);
    a.open(id(1), SESSION, id(2001), 5_000, 0).unwrap();
    a.open(id(2), SESSION, id(2002), 1_000, 0).unwrap();
    assert_eq!(a.len(), 2);
    let err = a.open(id(3), SESSION, id(2003), 1_000, 0).unwrap_err();
    assert_eq!(err.code(), "TOO_MANY_PENDING");
    assert_eq!(a.len(), 2);
    assert_eq!(a.session_of(&id(1)).unwrap(), Some(SESSION));
    assert_eq!(a.session_of(&id(2)).unwrap(), Some(SESSION));
    assert_eq!(a.session_of(&id(3)).unwrap(), None);
    // A refused approval was never opened: not found, and its gate waits.
    let err = a.reject(&id(3), "ops", None, 1).unwrap_err();
    assert!(matches!(err, CoreError::ApprovalNotFound(_)), "{err:?}");
    let mut p = pending("x", "h", 1);
    p.approval_id = id(3);
    assert_eq!(a.gate(p, 1).unwrap(), Gate::Waiting);
    assert_eq!(a.pending(None, 1).unwrap().len(), 0);
    // A bound of 0 keeps one.
    let one = Approvals::new(0);
    one.open(id(1), SESSION, id(2001), 5_000, 0).unwrap();
    assert!(one.open(id(2), SESSION, id(2002), 5_000, 0).is_err());
    assert_eq!(one.len(), 1);
    assert_eq!(one.session_of(&id(1)).unwrap(), Some(SESSION));
}

const OTHER: Uuid = Uuid::from_u128(1001);

/// Session `SESSION` opens `APPROVAL` and an execution waits on it.
fn one_waiting(a: &Approvals) {
    a.open(APPROVAL, SESSION, RESOLUTION, EXPIRES, 0).unwrap();
    assert_eq!(a.gate(pending("x", "h1", 1), 1).unwrap(), Gate::Waiting);
}

/// `SESSION`'s execution still waits, is listed, and can be granted.
fn still_decidable(a: &Approvals, now: i64) {
    assert_eq!(waiting(a, now), vec![w("x", "h1", 1)]);
    a.approve(&APPROVAL, "ops", None, None, None, GrantScope::Once, now)
        .unwrap();
    assert_eq!(a.gate(pending("x", "h1", now), now).unwrap(), Gate::Granted);
}

#[test]
fn a_flood_of_another_session_never_drops_a_pending_approval() {
    // The whole bound (5) is reached by the other session's flood: the
    // flood is refused, the waiting approval stays.
    let a = Approvals::new(5);
    one_waiting(&a);
    let mut refused = 0;
    for n in 0..50 {
        match a.open(id(100 + n), OTHER, id(3000 + n), EXPIRES, 2) {
            Ok(()) => {}
            Err(e) => {
                assert_eq!(e.code(), "TOO_MANY_PENDING");
                refused += 1;
            }
        }
    }
    assert_eq!(refused, 46);
    assert_eq!(a.len(), 5);
    still_decidable(&a, 3);
}

#[test]
fn a_session_has_at_most_its_bound_of_undecided_approvals() {
    let a = Approvals::new(100_000);
    one_waiting(&a);
    for n in 0..MAX_PENDING_PER_SESSION as u128 {
        a.open(id(100 + n), OTHER, id(3000 + n), EXPIRES, 2)
            .unwrap();
    }
    assert_eq!(a.undecided(&OTHER), MAX_PENDING_PER_SESSION);
    let err = a
        .open(id(99_999), OTHER, id(99_998), EXPIRES, 2)
        .unwrap_err();
    assert_eq!(
        (err.code(), err.path()),
        ("TOO_MANY_PENDING", Some("/requester/session_id"))
    );
    assert!(
        err.to_string()
            .contains(&MAX_PENDING_PER_SESSION.to_string()),
        "{err}"
    );
    assert_eq!(a.session_of(&id(99_999)).unwrap(), None);
    // The other session is not touched, and can still open approvals.
    assert_eq!(a.undecided(&SESSION), 1);
    still_decidable(&a, 3);
    a.open(id(7), SESSION, id(2007), EXPIRES, 3).unwrap();
}

#[test]
fn decided_approvals_do_not_count_against_the_session() {
    let a = Approvals::with_session_bound(100, 2);
    a.open(id(1), OTHER, id(3001), EXPIRES, 0).unwrap();
    a.open(id(2), OTHER, id(3002), EXPIRES, 0).unwrap();
    assert_eq!(
        a.open(id(3), OTHER, id(3003), EXPIRES, 0)
            .unwrap_err()
            .code(),
        "TOO_MANY_PENDING"
    );
    a.reject(&id(1), "ops", None, 1).unwrap();
    a.open(id(3), OTHER, id(3003), EXPIRES, 1).unwrap();
    assert!(a.open(id(4), OTHER, id(3004), EXPIRES, 1).is_err());
    a.approve(
        &id(2),
        "ops",
        None,
        Some("x"),
        None,
        GrantScope::Resolution,
        2,
    )
    .unwrap();
    a.open(id(4), OTHER, id(3004), EXPIRES, 2).unwrap();
    assert_eq!(a.undecided(&OTHER), 2);
    // Decided ones are still held, and still answer.
    assert_eq!(a.len(), 4);
    let err = a
        .approve(
            &id(1),
            "ops",
            None,
            Some("x"),
            None,
            GrantScope::Resolution,
            3,
        )
        .unwrap_err();
    assert_eq!(err.code(), "APPROVAL_REJECTED");
}

#[test]
fn expired_approvals_do_not_count_against_the_session() {
    // A long-lived approval opened first keeps the expired ones behind it
    // from being dropped at the front: the bound drops them from the count.
    let a = Approvals::with_session_bound(100, 3);
    a.open(id(1), OTHER, id(3001), 10_000, 0).unwrap();
    a.open(id(2), OTHER, id(3002), 100, 0).unwrap();
    a.open(id(3), OTHER, id(3003), 100, 0).unwrap();
    assert!(a.open(id(4), OTHER, id(3004), 10_000, 50).is_err());
    a.open(id(4), OTHER, id(3004), 10_000, 100).unwrap();
    a.open(id(5), OTHER, id(3005), 10_000, 100).unwrap();
    assert!(a.open(id(6), OTHER, id(3006), 10_000, 100).is_err());
    assert_eq!(a.undecided(&OTHER), 3);
    // The expired ones are still held until dropped: they answer expired.
    let err = a.reject(&id(2), "ops", None, 100).unwrap_err();
    assert!(matches!(err, CoreError::ApprovalExpired(_)), "{err:?}");
}

#[test]
fn the_whole_bound_drops_expired_approvals_of_any_session_first() {
    let a = Approvals::new(3);
    one_waiting(&a);
    a.open(id(2), OTHER, id(3002), 100, 0).unwrap();
    a.open(id(3), OTHER, id(3003), 100, 0).unwrap();
    // Full, nothing expired: refused, nothing dropped.
    assert!(a.open(id(4), OTHER, id(3004), EXPIRES, 50).is_err());
    assert_eq!(a.len(), 3);
    // The two expired (behind a live one at the front) make room.
    a.open(id(4), OTHER, id(3004), EXPIRES, 100).unwrap();
    a.open(id(5), OTHER, id(3005), EXPIRES, 100).unwrap();
    assert_eq!(a.len(), 3);
    assert_eq!(a.session_of(&id(2)).unwrap(), None);
    assert_eq!(a.session_of(&id(3)).unwrap(), None);
    assert_eq!(a.undecided(&OTHER), 2);
    assert!(a.open(id(6), OTHER, id(3006), EXPIRES, 100).is_err());
    still_decidable(&a, 100);
}

#[test]
fn a_discarded_approval_leaves_no_trace_in_the_count() {
    let a = Approvals::with_session_bound(100, 1);
    a.open(id(1), OTHER, id(3001), EXPIRES, 0).unwrap();
    assert!(a.open(id(2), OTHER, id(3002), EXPIRES, 0).is_err());
    a.discard(&id(1));
    assert_eq!((a.len(), a.undecided(&OTHER)), (0, 0));
    a.open(id(2), OTHER, id(3002), EXPIRES, 0).unwrap();
}
