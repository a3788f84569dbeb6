"""Restart and resume of stores (issue 5): a reopened store continues each
chain, a resumed session resolves and executes, and ended, unknown or live
sessions cannot be resumed.
"""

from __future__ import annotations

from pathlib import Path

import cra
import pytest
from audit_helpers import (
    Recording,
    StoreOpener,
    write_trace,
)
from conftest import ZEROS, chain_is_linked
from cra.errors import ConflictError, CraError, NotFoundError
from cra.timing import ManualClock
from execute_helpers import START, Harness


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
