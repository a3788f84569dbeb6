"""SQLiteStore specifics (issue 5): WAL mode and its table layout, a failed
batch that leaves nothing behind, stores of the old layout, payloads that
survive the round trip, checkpoints on flush, and batches kept across a
process crash.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import cra
import pytest
from audit_helpers import Capture, Recording, StoreOpener
from cra.storage import SQLiteStore
from cra.timing import ManualClock
from execute_helpers import START


def test_sqlite_store_is_in_wal_mode_with_a_rowid_events_table_and_a_sessions_table(
    tmp_path: Path,
) -> None:
    path = tmp_path / "store.db"
    store = SQLiteStore(path)
    with cra.Runtime(sinks=[store]) as rt:
        sid = rt.create_session("agent-1", "Work")
        rt.record(sid, "x.tick", {})
        rt.flush()
    store.close()
    of_session = store._of_session
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA page_size").fetchone()[0] == 16384
        tables = {
            name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        assert {"events", "sessions"} <= tables
        # Events in a rowid table (appended in arrival order) with one index,
        # its primary key's, by session key and sequence.
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
        (events_sql,) = db.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'events'"
        ).fetchone()
        assert "WITHOUT ROWID" not in events_sql.upper()
        indexes = [
            name
            for (name,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'"
            )
        ]
        assert len(indexes) == 1, indexes
        columns = [r[2] for r in db.execute(f"PRAGMA index_info({indexes[0]})")]
        assert columns == ["session", "sequence"]
        pk = sorted((r[5], r[1]) for r in db.execute("PRAGMA table_info(events)") if r[5])
        assert [c for _, c in pk] == ["session", "sequence"]
        columns = [r[1] for r in db.execute("PRAGMA table_info(events)")]
        assert columns == ["session", "sequence", "event_type", "event"]
        # A session's key in the events table: an integer, from session_keys.
        (key,) = db.execute(
            "SELECT session FROM session_keys WHERE session_id = ?", (sid,)
        ).fetchone()
        assert isinstance(key, int)
        assert db.execute("SELECT count(*) FROM events WHERE session = ?", (key,)).fetchone() == (
            2,
        )
        session_columns = {r[1] for r in db.execute("PRAGMA table_info(sessions)")}
        assert {
            "session_id",
            "agent_id",
            "status",
            "first_sequence",
            "anchor_hash",
            "last_sequence",
            "last_hash",
        } <= session_columns
        (status, count) = db.execute(
            "SELECT status, event_count FROM sessions WHERE session_id = ?", (sid,)
        ).fetchone()
        assert (status, count) == ("active", 2)
        plans = [
            " ".join(str(c) for c in row)
            for q in (
                f"SELECT event FROM events WHERE {of_session} AND event_type = 'y' ORDER BY sequence",
                f"SELECT event FROM events WHERE {of_session} AND sequence >= 3 ORDER BY sequence",
            )
            for row in db.execute("EXPLAIN QUERY PLAN " + q, ("x",))
        ]
        assert not any("SCAN" in p and "USING" not in p for p in plans), plans
        assert not any("TEMP B-TREE" in p for p in plans), plans
    finally:
        db.close()


def test_a_sqlite_batch_that_fails_leaves_nothing_behind_and_can_be_written_again(
    tmp_path: Path,
) -> None:
    # The batch brings a new session (whose key the store creates) and an
    # event already stored: the whole batch is rolled back, the new key too,
    # and the same session's events are written by a later batch.
    capture = Capture()
    with cra.Runtime(sinks=[capture], clock=ManualClock(start=START)) as rt:
        a = rt.create_session("agent-a", "First")
        rt.record(a, "x.tick", {"i": 0})
        b = rt.create_session("agent-b", "Second")
        rt.record(b, "x.tick", {"i": 0})
        rt.flush()
    of_a = [e for e in capture.events if e.session_id == a]
    of_b = [e for e in capture.events if e.session_id == b]
    store = SQLiteStore(tmp_path / "store.db")
    try:
        store.write_batch(of_a)
        with pytest.raises(sqlite3.IntegrityError):
            store.write_batch(of_b + of_a[-1:])
        assert store.events(b) == []
        assert [r["session_id"] for r in store.sessions()] == [a]
        store.write_batch(of_b)
        assert store.events(b) == [e.to_dict() for e in of_b]
        assert store.session(b)["event_count"] == 2
        assert store.verify(b).valid and store.verify(a).valid
    finally:
        store.close()
    reopened = SQLiteStore(tmp_path / "store.db")
    assert reopened.events(b) == [e.to_dict() for e in of_b]
    reopened.close()


#: The layout of the stores created before schema version 2, as they made it.
SCHEMA_V0 = """
CREATE TABLE IF NOT EXISTS events (
    session_id TEXT NOT NULL, sequence INTEGER NOT NULL, event_type TEXT NOT NULL,
    timestamp TEXT NOT NULL, event TEXT NOT NULL, PRIMARY KEY (session_id, sequence)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_by_type ON events (session_id, event_type, sequence);
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY, trace_id TEXT, root_span_id TEXT, agent_id TEXT, goal TEXT,
    status TEXT NOT NULL, started_at TEXT, ended_at TEXT, event_count INTEGER NOT NULL,
    first_sequence INTEGER NOT NULL, anchor_hash TEXT NOT NULL,
    last_sequence INTEGER NOT NULL, last_hash TEXT NOT NULL
);
"""


def test_a_store_of_the_old_layout_opens_and_keeps_its_layout(tmp_path: Path) -> None:
    # A file as a store before schema version 2 left it: 4 KiB pages, a
    # WITHOUT ROWID events table with a timestamp column, an index by type,
    # one session of a few events.
    capture = Capture()
    with cra.Runtime(sinks=[capture], clock=ManualClock(start=START)) as rt:
        sid = rt.create_session("agent-1", "Work")
        for i in range(4):
            rt.record(sid, "x.tick", {"i": i})
        rt.flush()
    old, new = capture.events[:3], capture.events[3:]
    reference = cra.storage.MemoryStore()
    reference.write_batch(old)
    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(SCHEMA_V0)
        db.executemany(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?)",
            [(e.session_id, e.sequence, e.event_type, e.timestamp, e.to_json()) for e in old],
        )
        row = reference.session(sid)
        db.execute(
            f"INSERT INTO sessions VALUES ({', '.join('?' * len(row))})", tuple(row.values())
        )
    finally:
        db.close()

    store = SQLiteStore(path)
    try:
        assert store.schema_version == 0
        assert store.events(sid) == [e.to_dict() for e in old]
        assert store.session(sid) == reference.session(sid)
        store.write_batch(new)
        reference.write_batch(new)
        assert store.events(sid) == [e.to_dict() for e in capture.events]
        assert [e["sequence"] for e in store.events(sid, event_type="x.tick")] == [1, 2, 3, 4]
        assert store.session(sid) == reference.session(sid)
        assert store.verify(sid).valid
        assert store.retention(max_events=2) == 3
        assert [e["sequence"] for e in store.events(sid)] == [3, 4]
        assert store.verify(sid).valid
    finally:
        store.close()

    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 0
        assert db.execute("PRAGMA page_size").fetchone()[0] == 4096
        (events_sql,) = db.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'events'"
        ).fetchone()
        assert "WITHOUT ROWID" in events_sql
        assert db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'events_by_type'"
        ).fetchone()
        stored = db.execute("SELECT sequence, timestamp FROM events ORDER BY sequence").fetchall()
        assert stored == [(e.sequence, e.timestamp) for e in capture.events[3:]]
    finally:
        db.close()
    reopened = SQLiteStore(path)
    assert reopened.schema_version == 0
    assert reopened.verify(sid).valid
    reopened.close()


def test_payloads_survive_the_round_trip(opener: StoreOpener, rec: Recording) -> None:
    sid = rec.session()
    payload = {
        "text": "naïve \u2013 日本 🎉",
        "n": 10**20,
        "f": 1e-07,
        "neg": -0.0,
        "nested": [{"a": None}],
    }
    rec.rt.record(sid, "x.unicode", payload)
    rec.rt.flush()
    store = opener.store
    assert store is not None
    (e,) = store.events(sid, event_type="x.unicode")
    assert e["payload"] == payload
    assert json.dumps(e["payload"]["neg"]) == "-0.0"
    assert store.verify(sid).valid


def test_sqlite_store_checkpoints_on_flush_not_on_each_large_commit(tmp_path: Path) -> None:
    # A batch of about 9 MB: more than SQLite's default auto-checkpoint (1,000
    # pages), less than the store's. It stays in the WAL until flush().
    capture = Capture()
    with cra.Runtime(sinks=[capture]) as rt:
        sid = rt.create_session("agent-1", "Work")
        for i in range(2_000):
            rt.record(sid, "x.big", {"i": i, "text": "x" * 4_000})
        rt.flush()
    path = tmp_path / "store.db"
    store = SQLiteStore(path)
    try:
        store.write_batch(capture.events)
        assert path.stat().st_size < 1_000_000
        assert Path(f"{path}-wal").stat().st_size > 8_000_000
        store.flush()
        assert path.stat().st_size > 8_000_000
        assert store.session(sid)["event_count"] == 2_001
    finally:
        store.close()


CRASHING_WRITER = textwrap.dedent(
    """
    import json, os, signal, sys, time
    import cra
    from cra.storage import SQLiteStore

    store = SQLiteStore(sys.argv[1])
    rt = cra.Runtime(sinks=[store])
    sid = rt.create_session("agent-1", "Work")
    for i in range(3_000):
        rt.record(sid, "x.tick", {"i": i, "pad": "p" * 1_000})
    while rt.stats()["written"] < 3_001:  # every batch committed; no flush()
        time.sleep(0.01)
    print(json.dumps([sid, store.session(sid)["last_hash"]]), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sqlite_batches_committed_before_a_process_crash_are_kept(tmp_path: Path) -> None:
    # The process is killed with no flush() and no close(): the committed
    # batches are only in the WAL (no checkpoint has run), which survives it.
    path = tmp_path / "store.db"
    out = subprocess.run(
        [sys.executable, "-c", CRASHING_WRITER, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == -signal.SIGKILL, out.stderr
    sid, last_hash = json.loads(out.stdout)
    assert Path(f"{path}-wal").stat().st_size > path.stat().st_size
    store = SQLiteStore(path)
    try:
        row = store.session(sid)
        assert (row["event_count"], row["last_hash"]) == (3_001, last_hash)
        assert len(store.events(sid)) == 3_001
        assert store.verify(sid).valid
    finally:
        store.close()
