"""Store verification checks the session's row against its stored events
(issue 14): a cut tail is `truncated`, an anchor moved outside retention
is `unrecorded_cut`, and a chain cut by retention says where it starts
(`anchored_at`) and that the prefix was removed by retention."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Tuple

import cra
from audit_helpers import run_cli
from cra import _core
from cra.storage import JSONLStore, MemoryStore, SQLiteStore

OF_SESSION = "(SELECT session FROM session_keys WHERE session_id = ?)"


def _record(store: Any, ticks: int = 9) -> str:
    with cra.Runtime(sinks=[store]) as rt:
        sid: str = rt.create_session("agent-1", "Work")
        for i in range(ticks):
            rt.record(sid, "x.tick", {"i": i})
        rt.flush()
    return sid


def _sqlite_session(tmp_path: Path, ticks: int = 9) -> Tuple[str, str]:
    path = str(tmp_path / "store.db")
    store = SQLiteStore(path)
    sid = _record(store, ticks)
    store.close()
    return path, sid


def _events(db: _core.SQLiteDatabase, sid: str) -> List[Dict[str, Any]]:
    rows = db.query(
        f"SELECT event FROM events WHERE session = {OF_SESSION} ORDER BY sequence", (sid,)
    )
    return [json.loads(t) for (t,) in rows]


def test_a_cut_tail_is_reported_as_truncated(tmp_path: Path) -> None:
    path, sid = _sqlite_session(tmp_path)
    db = _core.SQLiteDatabase(path)
    full = _events(db, sid)
    last = full[-1]
    db.query(f"DELETE FROM events WHERE session = {OF_SESSION} AND sequence > ?", (sid, 6))
    db.close()
    store = SQLiteStore(path)
    v = store.verify(sid)
    assert not v.valid
    assert v.error == "truncated"
    assert v.index == 7
    assert v.expected == {"last_sequence": last["sequence"], "last_hash": last["event_hash"]}
    assert v.found == {"last_sequence": 6, "last_hash": full[6]["event_hash"]}
    assert f"ends at sequence {last['sequence']}" in (v.message or "")
    store.close()


def test_a_moved_anchor_does_not_verify(tmp_path: Path) -> None:
    path, sid = _sqlite_session(tmp_path)
    db = _core.SQLiteDatabase(path)
    full = _events(db, sid)
    # Drop events 0-4 and move the anchor to event 5, as retention would.
    db.query(f"DELETE FROM events WHERE session = {OF_SESSION} AND sequence < 5", (sid,))
    db.query(
        "UPDATE sessions SET first_sequence = 5, anchor_hash = ?, event_count = event_count - 5"
        " WHERE session_id = ?",
        (full[5]["previous_event_hash"], sid),
    )
    db.close()
    store = SQLiteStore(path)
    v = store.verify(sid)
    assert not v.valid
    assert v.error == "unrecorded_cut"
    assert v.anchored_at == 5
    assert v.found == {"first_sequence": 5, "anchor_hash": full[5]["previous_event_hash"]}
    assert v.retention_cut is not None and v.retention_cut["cut_at"] is None
    store.close()


def test_a_retention_cut_verifies_from_its_anchor(tmp_path: Path) -> None:
    path, sid = _sqlite_session(tmp_path)
    store = SQLiteStore(path)
    assert store.retention(max_events=4) == 6
    v = store.verify(sid)
    assert v.valid, v
    assert v.anchored_at == 6
    cut = v.retention_cut
    assert cut is not None
    assert (cut["sequence"], cut["removed_events"], cut["recorded_by"]) == (6, 6, "retention")
    assert cut["anchor_hash"] == store.session(sid)["anchor_hash"]
    assert cut["cut_at"]
    # The record is append-only.
    db = _core.SQLiteDatabase(path)
    try:
        db.query("DELETE FROM retention_cuts")
    except Exception as e:  # sqlite3.IntegrityError: the trigger refuses it
        assert "append-only" in str(e)
    else:
        raise AssertionError("retention_cuts accepted a delete")
    db.close()
    # A second cut moves the anchor again; the last recorded cut matches it.
    assert store.retention(max_events=2) == 2
    v = store.verify(sid)
    assert v.valid and v.anchored_at == 8
    store.close()


def test_an_untouched_session_verifies_from_genesis(tmp_path: Path) -> None:
    path, sid = _sqlite_session(tmp_path)
    store = SQLiteStore(path)
    v = store.verify(sid)
    assert v.valid, v
    assert v.anchored_at is None
    assert v.retention_cut is None and v.expected is None and v.found is None
    assert v.event_count == 10
    store.close()


def test_an_anchor_from_before_cuts_were_recorded_is_adopted_as_a_migration(
    tmp_path: Path,
) -> None:
    path, sid = _sqlite_session(tmp_path)
    store = SQLiteStore(path)
    store.retention(max_events=4)
    store.close()
    db = _core.SQLiteDatabase(path)
    db.query("DROP TABLE retention_cuts")  # a file written before the table existed
    db.close()
    store = SQLiteStore(path)
    v = store.verify(sid)
    assert v.valid, v
    assert v.retention_cut is not None and v.retention_cut["recorded_by"] == "migration"
    store.close()


def test_the_row_count_must_match_the_stored_events(tmp_path: Path) -> None:
    path, sid = _sqlite_session(tmp_path)
    db = _core.SQLiteDatabase(path)
    db.query("UPDATE sessions SET event_count = 3 WHERE session_id = ?", (sid,))
    db.close()
    store = SQLiteStore(path)
    v = store.verify(sid)
    assert not v.valid and v.error == "count_mismatch"
    store.close()


def test_memory_store_checks_its_row_and_cuts() -> None:
    store = MemoryStore()
    sid = _record(store)
    assert store.verify(sid).valid
    assert store.retention(max_events=4) == 6
    v = store.verify(sid)
    assert v.valid and v.anchored_at == 6
    assert v.retention_cut is not None and v.retention_cut["recorded_by"] == "retention"
    # Events cut from the tail, behind the row's back.
    store._events[sid] = store._events[sid][:-2]
    v = store.verify(sid)
    assert not v.valid and v.error == "truncated"


def test_jsonl_store_refuses_an_anchor_rewritten_by_hand(tmp_path: Path) -> None:
    store = JSONLStore(tmp_path)
    sid = _record(store)
    store.close()
    path = tmp_path / f"{sid}.trace.jsonl"
    lines = path.read_text().splitlines()
    kept = [json.loads(t) for t in lines[5:]]
    path.write_text("".join(t + "\n" for t in lines[5:]))
    anchor = {"first_sequence": 5, "anchor_hash": kept[0]["previous_event_hash"]}
    (tmp_path / f"{sid}.anchor.json").write_text(json.dumps(anchor))
    # A directory that records cuts: the forged anchor matches none.
    (tmp_path / "retention_cuts.jsonl").write_text("")
    reopened = JSONLStore(tmp_path)
    v = reopened.verify(sid)
    assert not v.valid and v.error == "unrecorded_cut"
    reopened.close()


def test_jsonl_store_retention_records_its_cut(tmp_path: Path) -> None:
    store = JSONLStore(tmp_path)
    sid = _record(store)
    assert store.retention(max_events=4) == 6
    store.close()
    reopened = JSONLStore(tmp_path)
    v = reopened.verify(sid)
    assert v.valid and v.anchored_at == 6
    assert v.retention_cut is not None and v.retention_cut["recorded_by"] == "retention"
    reopened.close()


def test_cli_verifies_a_stored_session(tmp_path: Path) -> None:
    path, sid = _sqlite_session(tmp_path)
    store = SQLiteStore(path)
    store.retention(max_events=4)
    store.close()
    r = run_cli("trace", "verify", "--store", path, "--session", sid, "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["valid"] and doc["anchored_at"] == 6
    assert doc["retention_cut"]["recorded_by"] == "retention"
    r = run_cli("trace", "verify", "--store", path, "--session", sid)
    assert "removed by retention" in r.stdout
    db = _core.SQLiteDatabase(path)
    db.query(f"DELETE FROM events WHERE session = {OF_SESSION} AND sequence = 9", (sid,))
    db.close()
    r = run_cli("trace", "verify", "--store", path, "--session", sid, "--json")
    assert r.returncode != 0
    doc = json.loads(r.stdout)
    assert not doc["valid"] and doc["error"] == "truncated"
    assert doc["expected"]["last_sequence"] == 9 and doc["found"]["last_sequence"] == 8
