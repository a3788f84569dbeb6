"""`cra.Runtime(durability=...)`: with "sync" an operation returns only after
its events are written to every sink; while the sinks cannot write, work is
refused with `UnavailableError` (TRACE_UNAVAILABLE) before it acts; a full
queue waits at most `queue_wait_seconds`."""

from __future__ import annotations

import threading
import time
from typing import Any, List

import cra
import pytest
from cra import CARPRequest
from cra.errors import SinkError, UnavailableError, ValidationError
from cra.storage import SQLiteStore
from server_helpers import EXAMPLE_ATLAS


class Slow:
    """A sink that takes a while per batch, and can be made to fail."""

    def __init__(self, delay: float = 0.02) -> None:
        self.delay = delay
        self.types: List[str] = []
        self.failing = False
        self.gate = threading.Event()
        self.gate.set()

    def write_batch(self, events: List[Any]) -> None:
        self.gate.wait()
        time.sleep(self.delay)
        if self.failing:
            raise OSError("No space left on device")
        self.types.extend(e.event_type for e in events)


def test_sync_returns_after_the_events_are_written() -> None:
    sink = Slow()
    rt = cra.Runtime(sinks=[sink], durability="sync")
    assert rt.durability == "sync"
    sid = rt.create_session("agent", "goal")
    assert sink.types == ["session.started"]
    rt.record(sid, "x.step", {"n": 1})
    assert sink.types[-1] == "x.step"
    rt.end_session(sid)
    assert sink.types[-1] == "session.ended"
    rt.close()


def test_async_returns_before_the_events_are_written() -> None:
    sink = Slow(delay=0.2)
    rt = cra.Runtime(sinks=[sink])
    assert rt.durability == "async"
    sid = rt.create_session("agent", "goal")
    rt.record(sid, "x.step", {})
    assert "x.step" not in sink.types
    assert rt.flush(timeout=10)
    assert sink.types[-1] == "x.step"
    rt.close()


def test_sync_resolve_and_execute_are_in_the_store_when_they_return(tmp_path: Any) -> None:
    store = SQLiteStore(tmp_path / "t.db")
    rt = cra.Runtime(sinks=[store], durability="sync", atlases=[EXAMPLE_ATLAS])
    rt.register_executor("ticket.lookup", lambda ticket_id: {"id": ticket_id})
    sid = rt.create_session("agent-1", "goal")
    res = rt.resolve(CARPRequest.resolve(sid, "agent-1", "Look up ticket T-1"))
    reader = SQLiteStore(tmp_path / "t.db")  # another connection, no flush
    types = [e["event_type"] for e in reader.events(sid)]
    assert "carp.resolution.completed" in types
    out = rt.execute(
        CARPRequest.execute(
            sid, "agent-1", "w", res.resolution_id, "ticket.lookup", {"ticket_id": "T-1"}
        )
    )
    assert out.status == "success"
    types = [e["event_type"] for e in reader.events(sid)]
    assert types[-1] == "action.executed"
    rt.close()
    reader.close()
    store.close()


def test_sync_refuses_work_while_the_sink_cannot_write_and_resumes() -> None:
    sink = Slow(delay=0)
    rt = cra.Runtime(sinks=[sink], durability="sync", atlases=[EXAMPLE_ATLAS])
    calls: List[str] = []
    rt.register_executor("ticket.lookup", lambda ticket_id: calls.append(ticket_id) or {})
    sid = rt.create_session("agent-1", "goal")
    res = rt.resolve(CARPRequest.resolve(sid, "agent-1", "Look up ticket T-1"))
    sink.failing = True
    with pytest.raises(UnavailableError) as e:
        rt.record(sid, "x.queued", {})
    assert e.value.code == "TRACE_UNAVAILABLE" and e.value.http_status == 503
    assert e.value.recoverable is True
    # Refused before acting: the executor never runs.
    with pytest.raises(UnavailableError):
        rt.execute(
            CARPRequest.execute(
                sid, "agent-1", "w", res.resolution_id, "ticket.lookup", {"ticket_id": "T-1"}
            )
        )
    assert calls == []
    sink.failing = False  # space returns: the queued event is written
    deadline = time.monotonic() + 10
    while True:
        try:
            if rt.flush(timeout=10):
                break
        except SinkError:
            pass  # the failure, reported once
        assert time.monotonic() < deadline
    assert "x.queued" in sink.types
    rt.record(sid, "x.after", {})
    assert sink.types[-1] == "x.after"
    rt.close()


def test_a_full_queue_waits_at_most_queue_wait_seconds() -> None:
    sink = Slow(delay=0)
    sink.gate.clear()  # the flush thread blocks in its first write
    rt = cra.Runtime(sinks=[sink], queue_capacity=2, queue_wait_seconds=0.05)
    sid = rt.create_session("agent", "goal")
    with pytest.raises(UnavailableError) as e:
        for i in range(10):
            rt.record(sid, "x.fill", {"i": i})
    assert e.value.code == "TRACE_UNAVAILABLE"
    sink.gate.set()
    assert rt.flush(timeout=10)
    rt.close()


@pytest.mark.parametrize(
    "kw", [{"durability": "snyc"}, {"durability": ""}, {"queue_wait_seconds": -1.0}]
)
def test_bad_durability_options_are_refused(kw: Any) -> None:
    with pytest.raises(ValidationError) as e:
        cra.Runtime(**kw)
    assert e.value.code == "INVALID_OPTION"


def test_sync_holds_for_the_fast_api_too() -> None:
    from cra import fast

    sink = Slow()
    rt = cra.Runtime(sinks=[sink], durability="sync", atlases=[EXAMPLE_ATLAS])
    sid = rt.create_session("agent-1", "goal")
    fast.resolver(rt, sid).resolve("Look up ticket T-1")
    assert sink.types[-1] == "carp.resolution.completed"
    fast.recorder(rt)(sid, "x.fast", {})
    assert sink.types[-1] == "x.fast"
    rt.close()


def test_a_closed_sink_gate_skips_the_sink() -> None:
    from cra import _core

    class Gated(Slow):
        def __init__(self) -> None:
            super().__init__(delay=0)
            self.gate_ = _core.SinkGate()

        def _sink_gate(self) -> _core.SinkGate:
            return self.gate_

    sink = Gated()
    rt = cra.Runtime(sinks=[sink])
    sid = rt.create_session("agent", "goal")
    rt.record(sid, "x.unseen", {})
    assert rt.flush(timeout=10)
    assert sink.types == []  # closed: not called at all
    sink.gate_.open()
    rt.record(sid, "x.seen", {})
    assert rt.flush(timeout=10)
    assert sink.types == ["x.seen"]
    rt.close()
