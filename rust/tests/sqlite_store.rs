//! The SQLite store's writer on its own (no runtime, no Python): a batch
//! is all or nothing, keys a rolled-back batch created are forgotten, the
//! sessions table follows the store's row rules, and a bad event is typed.

use cra_core::sqlite::error::{SqliteError, SqliteFault};
use cra_core::sqlite::event::StoreEvent;
use cra_core::sqlite::store::SqliteDb;
use rusqlite::types::Value;
use serde_json::json;

fn event(session: &str, sequence: i64, event_type: &str, payload: serde_json::Value) -> String {
    json!({
        "trace_version": "1.0", "event_id": format!("e-{session}-{sequence}"),
        "trace_id": format!("t-{session}"), "span_id": format!("span-{session}-{sequence}"),
        "parent_span_id": null, "session_id": session, "sequence": sequence,
        "timestamp": format!("2026-11-22T00:00:{sequence:02}.000000Z"),
        "event_type": event_type, "payload": payload,
        "event_hash": format!("h-{session}-{sequence}"), "previous_event_hash": "p",
    })
    .to_string()
}

fn batch(texts: &[String]) -> Vec<StoreEvent> {
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| StoreEvent::from_text(i, t.clone()).expect("a valid event"))
        .collect()
}

fn started(session: &str) -> String {
    event(
        session,
        0,
        "session.started",
        json!({"agent_id": "a", "goal": "g"}),
    )
}

fn one(db: &mut SqliteDb, sql: &str) -> Vec<Vec<Value>> {
    db.query(sql, &[]).expect("query")
}

#[test]
fn a_failing_batch_leaves_nothing_and_its_new_keys_are_forgotten() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    let mut db = SqliteDb::open(path.to_str().expect("utf-8")).expect("open");
    assert_eq!(db.schema_version(), 2);
    let s1 = [started("s1"), event("s1", 1, "x.tick", json!({}))];
    db.write_batch(&batch(&s1)).expect("first batch");
    // A new session, then an event already stored: the whole batch fails.
    let bad = [started("s2"), s1[1].clone()];
    match db.write_batch(&batch(&bad)) {
        Err(SqliteError::Sqlite { fault, .. }) => assert_eq!(fault, SqliteFault::Constraint),
        other => panic!("expected a constraint failure, got {other:?}"),
    }
    let keys = one(
        &mut db,
        "SELECT session_id FROM session_keys ORDER BY session",
    );
    assert_eq!(keys, vec![vec![Value::Text("s1".into())]]);
    assert_eq!(
        one(&mut db, "SELECT count(*) FROM events"),
        vec![vec![Value::Integer(2)]]
    );
    // The same session written again gets a key the file has.
    db.write_batch(&batch(&[started("s2")])).expect("retry");
    let joined = one(
        &mut db,
        "SELECT k.session_id, e.sequence FROM events e JOIN session_keys k \
         ON k.session = e.session ORDER BY k.session_id, e.sequence",
    );
    assert_eq!(joined.len(), 3);
    assert_eq!(joined[2], vec![Value::Text("s2".into()), Value::Integer(0)]);
}

#[test]
fn the_sessions_table_follows_the_row_rules_across_batches_and_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    let path = path.to_str().expect("utf-8");
    let mut db = SqliteDb::open(path).expect("open");
    // Two sessions interleaved in one batch; "b" has no session.started.
    let first = [
        started("a"),
        event("b", 5, "x.tick", json!({})),
        event("a", 1, "x.tick", json!({})),
        event("b", 6, "x.tick", json!({})),
    ];
    db.write_batch(&batch(&first)).expect("first batch");
    db.close().expect("close");
    let mut db = SqliteDb::open(path).expect("reopen");
    db.write_batch(&batch(&[event("a", 2, "session.ended", json!({}))]))
        .expect("second batch");
    let rows = one(
        &mut db,
        "SELECT session_id, agent_id, goal, status, started_at, ended_at, event_count, \
         last_sequence, last_hash, root_span_id FROM sessions ORDER BY session_id",
    );
    let t = |s: &str| Value::Text(s.into());
    assert_eq!(
        rows[0],
        vec![
            t("a"),
            t("a"),
            t("g"),
            t("ended"),
            t("2026-11-22T00:00:00.000000Z"),
            t("2026-11-22T00:00:02.000000Z"),
            Value::Integer(3),
            Value::Integer(2),
            t("h-a-2"),
            t("span-a-0"),
        ]
    );
    assert_eq!(
        rows[1],
        vec![
            t("b"),
            Value::Null,
            Value::Null,
            t("active"),
            t("2026-11-22T00:00:05.000000Z"),
            Value::Null,
            Value::Integer(2),
            Value::Integer(6),
            t("h-b-6"),
            Value::Null,
        ]
    );
}

#[test]
fn an_event_without_what_the_store_indexes_is_a_typed_error() {
    match StoreEvent::from_text(3, r#"{"session_id": "s", "sequence": "x"}"#.into()) {
        Err(e @ SqliteError::Event { index: 3, .. }) => assert_eq!(e.code(), "INVALID_EVENT"),
        Err(other) => panic!("expected an event error, got {other:?}"),
        Ok(_) => panic!("expected an event error"),
    }
}

#[test]
fn an_owner_row_is_written_with_its_session_or_not_at_all() {
    use cra_core::sqlite::owners::PendingOwners;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    let mut db = SqliteDb::open(path.to_str().expect("utf-8")).expect("open");
    let pending = PendingOwners::default();
    pending.expect("s1", "key-a");
    db.write_batch(&batch(&[started("s0")]))
        .expect("unrelated batch");
    // A batch that fails (an event already stored) writes no owner either,
    // and the owner waits for the next batch of its session.
    let bad = batch(&[started("s1"), started("s0")]);
    let owners = pending.take_for(&bad);
    assert_eq!(owners, vec![("s1".to_string(), "key-a".to_string())]);
    assert!(db.write_batch_owned(&bad, &owners).is_err());
    pending.restore(owners);
    let count = |db: &mut SqliteDb, sql: &str| one(db, sql)[0][0].clone();
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM sqlite_master WHERE name = 'cra_server_owners'"
        ),
        Value::Integer(0)
    );
    let good = batch(&[started("s1")]);
    let owners = pending.take_for(&good);
    db.write_batch_owned(&good, &owners)
        .expect("the session and its owner");
    assert_eq!(
        one(&mut db, "SELECT session_id, key_id FROM cra_server_owners"),
        vec![vec![Value::Text("s1".into()), Value::Text("key-a".into())]]
    );
    // An owner row is never replaced.
    let again = batch(&[event("s1", 1, "x.tick", json!({}))]);
    db.write_batch_owned(&again, &[("s1".into(), "key-b".into())])
        .expect("written");
    assert_eq!(
        count(&mut db, "SELECT key_id FROM cra_server_owners"),
        Value::Text("key-a".into())
    );
    assert!(pending.take_for(&again).is_empty());
}
