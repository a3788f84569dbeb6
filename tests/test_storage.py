"""Stores (issue 5): MemoryStore, JSONLStore and SQLiteStore behind one
protocol — fed by the runtime's flush thread, queried by session, event
type and sequence, verified, cut by retention without losing where the kept
chain starts, reopened after a restart and continued by a new runtime."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cra
import pytest
from audit_helpers import STORE_KINDS, StoreOpener, tamper, tear, write_trace
from conftest import ZEROS, reference_hash
from cra.errors import ConflictError, CraError, NotFoundError
from cra.storage import JSONLStore, SQLiteStore
from cra.timing import ManualClock
from execute_helpers import START, START_TS, Harness

#: 2001-09-09: far enough in the past for any age cut-off.
LONG_AGO = 1_000_000_000.0
#: 2096-10-02: newer than any age cut-off.
FAR_AHEAD = 4_000_000_000.0


@pytest.fixture(params=STORE_KINDS)
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreOpener]:
    o = StoreOpener(request.param, tmp_path)
    o.open()
    yield o
    o.close()


class Recording:
    """A runtime on a manual clock whose only sink is the store under test."""

    def __init__(self, opener: StoreOpener, start: float = START) -> None:
        self.opener = opener
        self.clock = ManualClock(start=start)
        self.rt = cra.Runtime(sinks=[opener.store], clock=self.clock)

    def session(self, agent: str = "agent-1", goal: str = "Work", ticks: int = 0) -> str:
        sid = self.rt.create_session(agent, goal)
        for i in range(ticks):
            self.rt.record(sid, "x.tick", {"i": i})
        return sid

    def dicts(self, sid: str) -> list[dict[str, Any]]:
        self.rt.flush()
        return [e.to_dict() for e in self.rt.events(sid)]

    def close(self) -> None:
        self.rt.close(timeout=10)


@pytest.fixture
def rec(opener: StoreOpener) -> Iterator[Recording]:
    r = Recording(opener)
    yield r
    if not r.rt.closed:
        r.close()


def chain_is_linked(events: list[dict[str, Any]], first_sequence: int, anchor: str) -> None:
    prev = anchor
    for i, e in enumerate(events):
        assert e["sequence"] == first_sequence + i
        assert e["previous_event_hash"] == prev
        assert e["event_hash"] == reference_hash(e)
        prev = e["event_hash"]


# -- the runtime feeds the store ----------------------------------------------------------


def test_every_event_arrives_in_order(opener: StoreOpener, rec: Recording) -> None:
    sids = [rec.session(f"agent-{n}") for n in range(3)]
    for i in range(400):
        rec.rt.record(sids[i % 3], "x.tick", {"i": i})
    rec.rt.end_session(sids[0])
    rec.rt.flush()
    store = opener.store
    assert store is not None
    for sid in sids:
        stored = store.events(sid)
        assert stored == rec.dicts(sid)
        assert [e["sequence"] for e in stored] == list(range(len(stored)))
        chain_is_linked(stored, 0, ZEROS)
        assert store.verify(sid).valid
    assert len(store.events(sids[0])) == 1 + 134 + 1


def test_write_batch_takes_events_dicts_and_json_text(opener: StoreOpener) -> None:
    with Harness() as h:
        h.resolve()
        h.rt.flush()
        events = h.events()
    store = opener.store
    assert store is not None
    store.write_batch(events[:3])  # type: ignore[attr-defined]
    store.write_batch([e.to_dict() for e in events[3:6]])  # type: ignore[attr-defined]
    store.write_batch([e.to_json() for e in events[6:]])  # type: ignore[attr-defined]
    assert store.events(h.sid) == [e.to_dict() for e in events]
    assert store.verify(h.sid).valid


class Capture:
    """A sink that keeps every sealed event, in the order written."""

    def __init__(self) -> None:
        self.events: list[cra.TRACEEvent] = []

    def write_batch(self, events: list[cra.TRACEEvent]) -> None:
        self.events.extend(events)


def test_one_batch_of_many_sessions_gives_the_rows_of_one_event_per_batch(
    opener: StoreOpener,
) -> None:
    # Sessions start, interleave and end within what becomes a single batch,
    # once as TRACEEvent objects and once as dicts: each session's row must be
    # what writing the same events one at a time gives.
    capture = Capture()
    with cra.Runtime(sinks=[capture], clock=ManualClock(start=START)) as rt:
        a = rt.create_session("agent-a", "First")
        b = rt.create_session("agent-b", "Second")
        for i in range(5):
            rt.record(a, "x.tick", {"i": i})
            rt.record(b, "x.tick", {"i": i})
        rt.end_session(a, "completed")
        c = rt.create_session("agent-c", "Third")
        rt.record(b, "x.tick", {"i": 5})
        rt.record(c, "x.tick", {"i": 0})
        rt.flush()
    events = capture.events
    assert len({e.session_id for e in events}) == 3
    reference = cra.storage.MemoryStore()
    for e in events:
        reference.write_batch([e])
    store = opener.store
    assert store is not None
    half = len(events) // 2
    store.write_batch(events[:half])  # type: ignore[attr-defined]
    store.write_batch([e.to_dict() for e in events[half:]])  # type: ignore[attr-defined]
    assert store.sessions() == reference.sessions()
    assert [store.session(sid)["status"] for sid in (a, b, c)] == ["ended", "active", "active"]
    assert store.session(c)["agent_id"] == "agent-c"
    for sid in (a, b, c):
        assert store.verify(sid).valid


# -- queries --------------------------------------------------------------------------------


def test_events_filtered_by_type_sequence_and_limit(opener: StoreOpener, rec: Recording) -> None:
    sid = rec.session(ticks=6)
    for i in range(4):
        rec.rt.record(sid, "x.other", {"i": i})
    everything = rec.dicts(sid)
    store = opener.store
    assert store is not None
    ticks = store.events(sid, event_type="x.tick")
    assert [e["payload"]["i"] for e in ticks] == list(range(6))
    assert [e["sequence"] for e in store.events(sid, since_sequence=7)] == [7, 8, 9, 10]
    assert store.events(sid, limit=3) == everything[:3]
    assert store.events(sid, since_sequence=4, limit=2) == everything[4:6]
    other = store.events(sid, event_type="x.other", since_sequence=9, limit=5)
    assert [e["sequence"] for e in other] == [9, 10]
    assert store.events(sid, event_type="x.none") == []
    assert store.events(sid, since_sequence=100) == []
    assert store.events("0193a0b0-0000-7000-8000-000000000505") == []


def test_sessions_by_status_with_limit_and_offset(opener: StoreOpener, rec: Recording) -> None:
    sids = []
    for n in range(5):
        sids.append(rec.session(f"agent-{n}", goal=f"goal {n}", ticks=n))
        rec.clock.advance(1)
    rec.rt.end_session(sids[1], "completed")
    rec.rt.end_session(sids[3], "failed")
    rec.rt.flush()
    store = opener.store
    assert store is not None
    rows = store.sessions()
    assert [r["session_id"] for r in rows] == sids
    first = rows[0]
    assert first["agent_id"] == "agent-0"
    assert first["goal"] == "goal 0"
    assert first["started_at"] == START_TS
    assert first["status"] == "active"
    assert first["event_count"] == 1
    assert rows[2]["event_count"] == 3
    assert rows[2]["last_sequence"] == 2
    assert rows[2]["last_hash"] == rec.dicts(sids[2])[-1]["event_hash"]
    assert [r["session_id"] for r in store.sessions(status="ended")] == [sids[1], sids[3]]
    assert [r["session_id"] for r in store.sessions(status="active")] == [sids[0], sids[2], sids[4]]
    assert store.sessions(status="ended")[0]["ended_at"] is not None
    assert [r["session_id"] for r in store.sessions(limit=2)] == sids[:2]
    assert [r["session_id"] for r in store.sessions(limit=2, offset=2)] == sids[2:4]
    assert [r["session_id"] for r in store.sessions(offset=4)] == sids[4:]
    assert [r["session_id"] for r in store.sessions(status="active", offset=1, limit=1)] == [
        sids[2]
    ]
    assert store.sessions(offset=5) == []


def test_an_unknown_session_is_not_found(opener: StoreOpener) -> None:
    store = opener.store
    assert store is not None
    with pytest.raises(NotFoundError) as e:
        store.verify("0193a0b0-0000-7000-8000-000000000505")
    assert e.value.code == "SESSION_NOT_FOUND"


# -- verification ------------------------------------------------------------------------------


def test_tampering_with_a_stored_event_is_a_hash_mismatch_at_its_index(
    opener: StoreOpener, rec: Recording
) -> None:
    sid = rec.session(ticks=6)
    rec.close()
    store = opener.store
    assert store is not None
    assert store.verify(sid).valid
    tamper(opener, sid, 4, {"i": 999})
    report = store.verify(sid)
    assert (report.valid, report.error, report.index) == (False, "hash_mismatch", 4)
    assert store.events(sid)[4]["payload"] == {"i": 999}


# -- retention ------------------------------------------------------------------------------


def test_retention_by_count_keeps_the_anchor(opener: StoreOpener, rec: Recording) -> None:
    sid = rec.session(ticks=11)
    short = rec.session(ticks=1)
    full = rec.dicts(sid)
    store = opener.store
    assert store is not None
    assert store.retention(max_events=4) == 8
    kept = store.events(sid)
    assert kept == full[8:]
    row = store.session(sid)
    assert (row["first_sequence"], row["anchor_hash"]) == (8, full[7]["event_hash"])
    assert row["event_count"] == 4
    report = store.verify(sid)
    assert report.valid and report.event_count == 4
    # A session within the limit is left alone.
    assert len(store.events(short)) == 2
    assert store.session(short)["first_sequence"] == 0
    assert store.session(short)["anchor_hash"] == ZEROS
    # Nothing more to drop.
    assert store.retention(max_events=4) == 0

    for i in range(3):
        rec.rt.record(sid, "x.after", {"i": i})
    rec.rt.end_session(sid)
    rec.close()
    chain_is_linked(store.events(sid), 8, full[7]["event_hash"])
    assert store.verify(sid).valid

    store = opener.reopen()
    row = store.session(sid)
    assert (row["first_sequence"], row["anchor_hash"]) == (8, full[7]["event_hash"])
    assert row["status"] == "ended"
    assert row["agent_id"] == "agent-1"
    assert row["started_at"] == START_TS
    report = store.verify(sid)
    assert report.valid and report.event_count == 8


def test_retention_by_age_keeps_the_anchor(opener: StoreOpener) -> None:
    rec = Recording(opener, start=LONG_AGO)
    try:
        sid = rec.session(ticks=4)
        rec.clock.set(FAR_AHEAD)
        for i in range(3):
            rec.rt.record(sid, "x.recent", {"i": i})
        full = rec.dicts(sid)
        store = opener.store
        assert store is not None
        assert store.retention(max_age_seconds=3600) == 5
        assert [e["event_type"] for e in store.events(sid)] == ["x.recent"] * 3
        row = store.session(sid)
        assert (row["first_sequence"], row["anchor_hash"]) == (5, full[4]["event_hash"])
        assert store.verify(sid).valid
        rec.rt.record(sid, "x.recent", {"i": 3})
        rec.rt.flush()
        assert store.verify(sid).valid
    finally:
        rec.close()
    store = opener.reopen()
    assert store.session(sid)["first_sequence"] == 5
    report = store.verify(sid)
    assert report.valid and report.event_count == 4


def test_retention_that_drops_a_whole_chain_still_continues_it(opener: StoreOpener) -> None:
    rec = Recording(opener, start=LONG_AGO)
    sid = rec.session(ticks=3)
    ended = rec.session("agent-2", ticks=1)
    rec.rt.end_session(ended)
    last = rec.dicts(sid)[-1]
    rec.close()
    store = opener.store
    assert store is not None
    assert store.retention(max_age_seconds=3600) == 4 + 3
    assert store.events(sid) == []
    row = store.session(sid)
    assert (row["first_sequence"], row["anchor_hash"]) == (4, last["event_hash"])
    assert store.verify(sid).valid

    store = opener.reopen()
    row = store.session(sid)
    assert (row["status"], row["agent_id"], row["goal"]) == ("active", "agent-1", "Work")
    assert (row["last_sequence"], row["last_hash"]) == (3, last["event_hash"])
    assert store.session(ended)["status"] == "ended"

    clock = ManualClock(start=FAR_AHEAD)
    with cra.Runtime(sinks=[store], clock=clock) as rt:
        assert store.resume(rt, sid) == sid
        rt.record(sid, "x.after", {})
        rt.flush()
        with pytest.raises(CraError) as e:
            store.resume(rt, ended)
        assert e.value.code == "SESSION_ENDED"
    (after,) = store.events(sid)
    assert (after["sequence"], after["previous_event_hash"]) == (4, last["event_hash"])
    assert store.verify(sid).valid


# -- restart and resume -----------------------------------------------------------------------


def test_a_reopened_store_continues_each_chain(opener: StoreOpener, tmp_path: Path) -> None:
    rec = Recording(opener)
    a = rec.session("agent-a", goal="First", ticks=3)
    b = rec.session("agent-b", goal="Second", ticks=5)
    before = {sid: rec.dicts(sid) for sid in (a, b)}
    rec.close()

    store = opener.reopen()
    clock = ManualClock(start=START + 600)
    with cra.Runtime(sinks=[store], clock=clock) as rt:
        for sid in (b, a):
            assert store.resume(rt, sid) == sid
        assert rt.get_session(a)["agent_id"] == "agent-a"
        rt.record(a, "x.resumed", {"n": 1})
        rt.record(b, "x.resumed", {"n": 1})
        rt.record(a, "x.resumed", {"n": 2})
        rt.end_session(a, "completed")
        rt.flush()
    for sid in (a, b):
        stored = store.events(sid)
        old = before[sid]
        assert stored[: len(old)] == old
        first_new = stored[len(old)]
        assert first_new["sequence"] == old[-1]["sequence"] + 1
        assert first_new["previous_event_hash"] == old[-1]["event_hash"]
        assert first_new["trace_id"] == old[0]["trace_id"]
        assert first_new["parent_span_id"] == old[0]["span_id"]
        chain_is_linked(stored, 0, ZEROS)
        assert store.verify(sid).valid
        exported = write_trace(tmp_path / f"{sid}.trace.jsonl", stored)
        report = cra.verify_jsonl(exported)
        assert report.valid and report[sid].event_count == len(stored)
    assert [e["event_type"] for e in store.events(a)][-3:] == [
        "x.resumed",
        "x.resumed",
        "session.ended",
    ]
    assert store.session(a)["status"] == "ended"
    assert store.session(b)["status"] == "active"

    store = opener.reopen()
    for sid in (a, b):
        assert store.verify(sid).valid
    assert store.session(a)["event_count"] == 4 + 3
    assert store.session(b)["event_count"] == 6 + 1


def test_a_resumed_session_resolves_and_executes(opener: StoreOpener) -> None:
    with Harness(sinks=[opener.store]) as h:
        h.resolve()
        h.execute("api.call", {"path": "/a"})
        h.rt.flush()
        sid, last = h.sid, h.events()[-1]
    store = opener.reopen()
    with Harness(sinks=[store], start=START + 10) as h2:
        store.resume(h2.rt, sid)
        h2.resolve(sid)
        assert h2.execute("api.call", {"path": "/b"}, sid=sid).status == "success"
        h2.rt.end_session(sid)
        h2.rt.flush()
    stored = store.events(sid)
    resumed = [e for e in stored if e["sequence"] > last.sequence]
    assert resumed[0]["previous_event_hash"] == last.event_hash
    assert resumed[0]["event_type"] == "carp.request.received"
    assert store.verify(sid).valid
    assert store.session(sid)["status"] == "ended"


def test_an_ended_session_cannot_be_resumed(opener: StoreOpener, rec: Recording) -> None:
    sid = rec.session(ticks=1)
    rec.rt.end_session(sid)
    rec.close()
    store = opener.reopen()
    with cra.Runtime() as rt:
        with pytest.raises(CraError) as e:
            store.resume(rt, sid)
        assert e.value.code == "SESSION_ENDED"
        assert rt.list_sessions() == []


def test_resume_of_an_unknown_or_live_session_is_refused(
    opener: StoreOpener, rec: Recording
) -> None:
    sid = rec.session(ticks=1)
    rec.rt.flush()
    store = opener.store
    assert store is not None
    with pytest.raises(NotFoundError):
        store.resume(rec.rt, "0193a0b0-0000-7000-8000-000000000505")
    with pytest.raises(ConflictError):
        store.resume(rec.rt, sid)


# -- JSONLStore ------------------------------------------------------------------------------


def test_jsonl_store_keeps_one_file_per_session(tmp_path: Path) -> None:
    store = JSONLStore(tmp_path / "traces")
    with cra.Runtime(sinks=[store]) as rt:
        sids = [rt.create_session(f"agent-{n}", "Work") for n in range(3)]
        for i in range(30):
            rt.record(sids[i % 3], "x.tick", {"i": i})
        rt.flush()
    store.close()
    files = sorted((tmp_path / "traces").glob("*.trace.jsonl"))
    assert [f.name for f in files] == sorted(f"{sid}.trace.jsonl" for sid in sids)
    for sid in sids:
        assert store.path_of(sid) == tmp_path / "traces" / f"{sid}.trace.jsonl"
        report = cra.verify_jsonl(store.path_of(sid))
        assert report.valid
        assert list(report) == [sid]
        assert report[sid].event_count == 11


def test_jsonl_store_cuts_a_torn_tail_on_open_and_reports_it(tmp_path: Path) -> None:
    store = JSONLStore(tmp_path / "traces")
    with cra.Runtime(sinks=[store]) as rt:
        sid = rt.create_session("agent-1", "Work")
        intact = rt.create_session("agent-2", "Work")
        for i in range(5):
            rt.record(sid, "x.tick", {"i": i})
        rt.flush()
        before = [e.to_dict() for e in rt.events(sid)]
    store.close()
    path = store.path_of(sid)
    size = path.stat().st_size
    torn = tear(path)
    assert cra.verify_jsonl(path).torn_tail is not None

    store = JSONLStore(tmp_path / "traces")
    assert store.repaired == [(str(path), torn)]
    assert path.stat().st_size == size
    assert path.read_bytes().endswith(b"\n")
    assert store.events(sid) == before
    assert store.verify(sid).valid
    assert store.verify(intact).valid
    assert cra.verify_jsonl(path).valid

    with cra.Runtime(sinks=[store]) as rt:
        store.resume(rt, sid)
        rt.record(sid, "x.after", {})
        rt.flush()
    after = store.events(sid)[-1]
    assert (after["sequence"], after["previous_event_hash"]) == (6, before[-1]["event_hash"])
    assert store.verify(sid).valid
    store.close()
    assert JSONLStore(tmp_path / "traces").repaired == []


# -- SQLiteStore ------------------------------------------------------------------------------


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
