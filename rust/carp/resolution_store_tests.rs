//! Kept resolutions: one session's volume drops only its own (oldest,
//! without an approval id), never another session's live resolution; past
//! the bounds a new one is refused with `TOO_MANY_PENDING`; expired ones
//! are dropped first.

use std::sync::Arc;

use uuid::Uuid;

use super::{Lookup, ResolutionStore, MAX_RESOLUTIONS_PER_SESSION};
use crate::atlas::registry::Registry;
use crate::carp::request::Operation;
use crate::carp::resolution::{DecisionType, RequestEcho, Resolution};
use crate::time::Micros;

const A: Uuid = Uuid::from_u128(1000);
const B: Uuid = Uuid::from_u128(1001);
const LONG: Micros = 1_000_000;

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn resolution(n: u128, session: Uuid, expires_at: Micros, gated: bool) -> Arc<Resolution> {
    Arc::new(Resolution {
        resolution_id: id(n),
        request_id: id(n),
        session_id: session,
        trace_id: Uuid::nil(),
        agent_id: Arc::from("agent"),
        timestamp: 0,
        expires_at,
        ttl_seconds: 1,
        snapshot: Registry::new().snapshot(),
        decision: DecisionType::Allow,
        reason: None,
        approval_id: gated.then(|| id(n + 1_000_000)),
        evaluations: Vec::new(),
        blocks: Vec::new(),
        constraints: Vec::new(),
        echo: RequestEcho {
            operation: Operation::Resolve,
            goal: Arc::from("goal"),
            atlas_ids: Vec::new(),
            risk_tier: None,
            context_hints: None,
            required_capabilities: None,
        },
    })
}

fn found(s: &ResolutionStore, n: u128, now: Micros) -> bool {
    matches!(s.get(&id(n), now), Lookup::Found(_))
}

#[test]
fn a_flood_of_one_session_drops_only_its_own_oldest() {
    let s = ResolutionStore::new(10);
    s.insert(resolution(1, A, LONG, false), 0).unwrap();
    s.insert(resolution(2, A, LONG, true), 0).unwrap();
    for n in 100..1_000 {
        s.insert(resolution(n, B, LONG, false), 1).unwrap();
    }
    assert_eq!(s.len(), 10);
    assert!(found(&s, 1, 2) && found(&s, 2, 2), "A's resolutions kept");
    // B keeps its newest 8.
    assert!(found(&s, 999, 2) && found(&s, 992, 2));
    assert!(matches!(s.get(&id(991), 2), Lookup::Missing));
}

#[test]
fn a_session_with_nothing_to_give_up_is_refused_at_the_whole_bound() {
    let s = ResolutionStore::new(3);
    for n in 1..=3 {
        s.insert(resolution(n, A, LONG, false), 0).unwrap();
    }
    let err = s.insert(resolution(10, B, LONG, false), 1).unwrap_err();
    assert_eq!(
        (err.code(), err.path()),
        ("TOO_MANY_PENDING", Some("/requester/session_id"))
    );
    assert!(err.to_string().contains("(3)"), "{err}");
    for n in 1..=3 {
        assert!(found(&s, n, 1), "A's resolution {n} kept");
    }
    assert!(matches!(s.get(&id(10), 1), Lookup::Missing));
    // A itself still makes room from its own.
    s.insert(resolution(4, A, LONG, false), 1).unwrap();
    assert!(!found(&s, 1, 1) && found(&s, 4, 1));
}

#[test]
fn resolutions_with_an_approval_are_never_dropped_for_room() {
    let s = ResolutionStore::with_session_bound(100, 3);
    s.insert(resolution(1, A, LONG, true), 0).unwrap();
    s.insert(resolution(2, A, LONG, false), 0).unwrap();
    s.insert(resolution(3, A, LONG, true), 0).unwrap();
    // The plain one goes; the gated ones stay.
    s.insert(resolution(4, A, LONG, false), 0).unwrap();
    assert!(found(&s, 1, 0) && found(&s, 3, 0) && found(&s, 4, 0));
    assert!(!found(&s, 2, 0));
    s.insert(resolution(5, A, LONG, false), 0).unwrap();
    assert!(!found(&s, 4, 0) && found(&s, 5, 0));
    // Three gated: nothing left to give up, refused.
    s.insert(resolution(6, A, LONG, true), 0).unwrap();
    let err = s.insert(resolution(7, A, LONG, false), 0).unwrap_err();
    assert_eq!(err.code(), "TOO_MANY_PENDING");
    assert!(found(&s, 1, 0) && found(&s, 3, 0) && found(&s, 6, 0));
    // Another session is not concerned by A's bound.
    s.insert(resolution(8, B, LONG, false), 0).unwrap();
}

#[test]
fn the_per_session_bound_is_the_constant_and_evicts_that_session_only() {
    let s = ResolutionStore::new(1_000_000);
    s.insert(resolution(1, A, LONG, false), 0).unwrap();
    let flood = MAX_RESOLUTIONS_PER_SESSION as u128 + 10;
    for n in 0..flood {
        s.insert(resolution(100 + n, B, LONG, false), 1).unwrap();
    }
    assert_eq!(s.len(), MAX_RESOLUTIONS_PER_SESSION + 1);
    assert!(found(&s, 1, 2));
    assert!(!found(&s, 109, 2) && found(&s, 110, 2));
}

#[test]
fn expired_resolutions_are_dropped_first_at_the_whole_bound() {
    let s = ResolutionStore::new(3);
    s.insert(resolution(1, A, 100, true), 0).unwrap();
    s.insert(resolution(2, A, 100, true), 0).unwrap();
    s.insert(resolution(3, A, LONG, true), 0).unwrap();
    // Nothing expired and nothing A may give up: B is refused.
    assert!(s.insert(resolution(10, B, LONG, false), 50).is_err());
    // Expired but still held: execute can say so.
    assert!(matches!(s.get(&id(1), 100), Lookup::Expired));
    s.insert(resolution(10, B, LONG, false), 100).unwrap();
    s.insert(resolution(11, B, LONG, false), 100).unwrap();
    assert_eq!(s.len(), 3);
    assert!(matches!(s.get(&id(1), 100), Lookup::Missing));
    assert!(found(&s, 3, 100) && found(&s, 10, 100) && found(&s, 11, 100));
}

#[test]
fn expired_gated_resolutions_of_the_session_make_room_for_it() {
    let s = ResolutionStore::with_session_bound(100, 2);
    s.insert(resolution(1, A, 100, true), 0).unwrap();
    s.insert(resolution(2, A, LONG, true), 0).unwrap();
    assert!(s.insert(resolution(3, A, LONG, true), 50).is_err());
    s.insert(resolution(3, A, LONG, true), 100).unwrap();
    assert!(found(&s, 2, 100) && found(&s, 3, 100));
}

#[test]
fn a_removed_resolution_frees_its_place() {
    let s = ResolutionStore::with_session_bound(100, 1);
    s.insert(resolution(1, A, LONG, true), 0).unwrap();
    assert!(s.insert(resolution(2, A, LONG, true), 0).is_err());
    s.remove(&id(1));
    assert!(s.is_empty());
    s.insert(resolution(2, A, LONG, true), 0).unwrap();
}
