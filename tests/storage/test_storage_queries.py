"""Stores fed by the runtime (issue 5), for MemoryStore, JSONLStore and
SQLiteStore alike: every event arrives in order through the flush thread and
write_batch, queries by session, event type, sequence and status, unknown
sessions, and verification of a tampered stored event.
"""

from __future__ import annotations

import cra
import pytest
from audit_helpers import (
    Capture,
    Recording,
    StoreOpener,
    tamper,
)
from conftest import ZEROS, chain_is_linked
from cra.errors import NotFoundError
from cra.timing import ManualClock
from execute_helpers import START, START_TS, Harness

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
