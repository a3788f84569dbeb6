"""The recorder: flush and close, overflow policies, stats, failing sinks,
the memory limit, fork, the exit hook, and the errors `record()` raises."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
import warnings
from pathlib import Path

import cra
import pytest
from conftest import GatedSink, ListSink, wait_for_child
from cra.errors import CraError, ExpiredError, NotFoundError, SinkError, ValidationError

STATS_KEYS = {"recorded", "sealed", "written", "dropped", "queue_depth", "high_water_mark"}


def hashes(events: list[cra.TRACEEvent]) -> list[str]:
    return [e.event_hash for e in events]


# -- flush and close --------------------------------------------------------


def test_flush_returns_true_once_written(runtime: cra.Runtime) -> None:
    sid = runtime.create_session(agent_id="a", goal="g")
    for i in range(1000):
        runtime.record(sid, "x.n", {"i": i})
    assert runtime.flush(timeout=10) is True
    s = runtime.stats()
    assert s["recorded"] == s["sealed"] == s["written"] == 1001
    assert s["queue_depth"] == 0


def test_flush_honours_its_timeout() -> None:
    sink = GatedSink()
    rt = cra.Runtime(sinks=[sink])
    try:
        rt.create_session(agent_id="a", goal="g")
        assert sink.entered.wait(10)
        start = time.monotonic()
        assert rt.flush(timeout=0.2) is False
        assert time.monotonic() - start < 5.2  # returned, did not hang
    finally:
        sink.gate.set()
    assert rt.flush(timeout=10) is True
    rt.close()
    assert len(sink.events) == 1


def test_close_refuses_further_records() -> None:
    rt = cra.Runtime()
    sid = rt.create_session(agent_id="a", goal="g")
    rt.record(sid, "x.n", {})
    assert rt.close(timeout=10) is True
    assert rt.closed
    with pytest.raises(CraError) as exc:
        rt.record(sid, "x.n", {})
    assert exc.value.code == "RECORDER_CLOSED"
    with pytest.raises(CraError) as exc:
        rt.create_session(agent_id="b", goal="g")
    assert exc.value.code == "RECORDER_CLOSED"
    assert [s["session_id"] for s in rt.list_sessions()] == [sid]  # none half-made
    assert rt.close(timeout=10) is True  # closing twice is harmless
    assert rt.flush(timeout=1) is True
    assert [e.event_type for e in rt.events(sid)] == ["session.started", "x.n"]


def test_invalid_timeout_is_refused(runtime: cra.Runtime) -> None:
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValidationError):
            runtime.flush(timeout=bad)


# -- overflow -------------------------------------------------------------


def test_drop_counts_what_it_drops_and_chains_still_verify(tmp_path: Path) -> None:
    sink = GatedSink()
    path = tmp_path / "drop.trace.jsonl"
    rt = cra.Runtime(trace_file=path, sinks=[sink], queue_capacity=4, overflow="drop")
    try:
        sid = rt.create_session(agent_id="a", goal="g")
        assert sink.entered.wait(10)  # the flush thread is stuck on session.started
        for i in range(100):
            rt.record(sid, "x.n", {"i": i})
        s = rt.stats()
        assert s["dropped"] == 96 and s["recorded"] == 5 and s["queue_depth"] == 4
    finally:
        sink.gate.set()
    assert rt.flush(timeout=10)
    s = rt.stats()
    assert (s["recorded"], s["written"], s["dropped"]) == (5, 5, 96)
    events = rt.events(sid)
    assert [e.payload.get("i") for e in events] == [None, 0, 1, 2, 3]
    assert rt.verify(sid).valid and rt.verify(sid).event_count == 5
    rt.close()
    assert hashes(sink.events) == hashes(events)
    assert cra.verify_jsonl(path).valid


def test_drop_never_loses_the_start_of_a_chain() -> None:
    # Dropping session.started would orphan every later event of the session.
    sink = GatedSink()
    rt = cra.Runtime(sinks=[sink], queue_capacity=2, overflow="drop")
    try:
        first = rt.create_session(agent_id="a", goal="g")
        assert sink.entered.wait(10)
        for i in range(10):
            rt.record(first, "x.n", {"i": i})  # fills the queue, drops the rest
        created: list[str] = []
        worker = threading.Thread(
            target=lambda: created.append(rt.create_session(agent_id="b", goal="g"))
        )
        worker.start()
        # Wait until the new session.started is either waiting for room
        # (counted as recorded) or dropped.
        deadline = time.monotonic() + 10
        while rt.stats()["recorded"] == 3 and rt.stats()["dropped"] == 8:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        sink.gate.set()
    worker.join(10)
    (second,) = created
    rt.record(second, "x.n", {"i": 0})
    assert rt.flush(timeout=10)
    assert [e.event_type for e in rt.events(second)] == ["session.started", "x.n"]
    assert rt.stats()["orphaned"] == 0
    rt.close()


def test_block_loses_nothing() -> None:
    sink = GatedSink()
    rt = cra.Runtime(sinks=[sink], queue_capacity=4, overflow="block")
    sid = rt.create_session(agent_id="a", goal="g")

    def produce() -> None:
        for i in range(500):
            rt.record(sid, "x.n", {"i": i})

    producer = threading.Thread(target=produce)
    try:
        assert sink.entered.wait(10)
        producer.start()
    finally:
        sink.gate.set()
    producer.join(30)
    assert not producer.is_alive()
    assert rt.flush(timeout=10)
    s = rt.stats()
    assert (s["recorded"], s["written"], s["dropped"]) == (501, 501, 0)
    assert 1 <= s["high_water_mark"] <= 4
    events = rt.events(sid)
    assert [e.payload.get("i") for e in events[1:]] == list(range(500))
    assert hashes(sink.events) == hashes(events)
    rt.close()


def test_overflow_option_is_checked() -> None:
    with pytest.raises(ValidationError) as exc:
        cra.Runtime(overflow="sometimes")
    assert exc.value.path == "/overflow"


def test_stats_keys(runtime: cra.Runtime) -> None:
    sid = runtime.create_session(agent_id="a", goal="g")
    runtime.record(sid, "x.n", {})
    assert runtime.flush(timeout=10)
    s = runtime.stats()
    assert STATS_KEYS <= set(s)
    assert all(isinstance(s[k], int) for k in STATS_KEYS)
    assert s["dropped"] == 0 and s["queue_depth"] == 0 and s["high_water_mark"] >= 0


# -- sinks ----------------------------------------------------------------


class FlakySink(ListSink):
    """Fails like a full disk for its first `failures` batches."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.calls = 0

    def write_batch(self, events: list[cra.TRACEEvent]) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise OSError(28, "No space left on device")
        super().write_batch(events)


def test_failing_sink_is_reported_then_catches_up() -> None:
    sink = FlakySink(failures=3)
    rt = cra.Runtime(sinks=[sink])
    sid = rt.create_session(agent_id="a", goal="g")
    for i in range(20):
        rt.record(sid, "x.n", {"i": i})
    with pytest.raises(SinkError) as exc:
        rt.flush(timeout=10)
    assert exc.value.code == "TRACE_SINK_FAILED" and exc.value.recoverable
    assert "No space left" in str(exc.value)
    for _ in range(10):  # one error per failed attempt may still be pending
        try:
            assert rt.flush(timeout=10)
            break
        except SinkError:
            continue
    events = rt.events(sid)
    assert len(events) == 21
    assert hashes(sink.events) == hashes(events)  # each once, in order
    s = rt.stats()
    assert s["written"] == s["recorded"] == 21 and s["sink_errors"] >= 3
    rt.close()


def test_python_sink_gets_trace_events_in_sequence_order(tmp_path: Path) -> None:
    sink = ListSink()
    with cra.Runtime(sinks=[sink]) as rt:
        a = rt.create_session(agent_id="a", goal="g")
        b = rt.create_session(agent_id="b", goal="g")
        for i in range(300):
            rt.record(a if i % 3 else b, "x.n", {"i": i})
        assert rt.flush(timeout=10)
        assert all(isinstance(e, cra.TRACEEvent) for e in sink.events)
        for sid in (a, b):
            mine = [e for e in sink.events if e.session_id == sid]
            assert [e.sequence for e in mine] == list(range(len(mine)))
            assert hashes(mine) == hashes(rt.events(sid))
        assert [e.payload["i"] for e in sink.events[2:]] == list(range(300))


def test_unwritable_trace_file_fails_at_construction(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for path in (blocker / "sub" / "t.trace.jsonl", tmp_path):
        with pytest.raises(CraError) as exc:
            cra.Runtime(trace_file=path)
        assert exc.value.code == "IO_ERROR"
        assert exc.value.path


# -- memory limit ---------------------------------------------------------


def test_memory_limit_evicts_ended_sessions_first() -> None:
    with cra.Runtime(memory_limit=10) as rt:

        def session(records: int, end: bool = False) -> str:
            sid = rt.create_session(agent_id="a", goal="g")
            for i in range(records):
                rt.record(sid, "x.n", {"i": i})
            if end:
                rt.end_session(sid)
            assert rt.flush(timeout=10)
            return sid

        old_open = session(3)  # 4 events
        ended = session(3, end=True)  # 5 events, newer than old_open
        new = session(2)  # 3 events: 12 > 10, the ended session goes
        assert rt.events(ended) == []
        assert len(rt.events(old_open)) == 4 and len(rt.events(new)) == 3
        s = rt.stats()
        assert (s["evicted_sessions"], s["evicted_events"], s["memory_events"]) == (1, 5, 7)

        for i in range(4):  # 11 > 10 and nothing has ended: the oldest session
            rt.record(new, "x.more", {"i": i})  # loses its oldest half, anchored
        assert rt.flush(timeout=10)
        kept = rt.events(old_open)
        assert [e.sequence for e in kept] == [2, 3] and len(rt.events(new)) == 7
        s = rt.stats()
        assert (s["evicted_sessions"], s["evicted_events"], s["memory_events"]) == (1, 7, 9)
        assert s["written"] == s["recorded"] == 16
        # What is kept still verifies (from its anchor), and an evicted
        # session says so instead of looking empty.
        assert rt.verify(old_open).valid and rt.verify(new).valid
        with pytest.raises(CraError) as info:
            rt.verify(ended)
        assert info.value.code == "EVENTS_EVICTED" and info.value.http_status == 404


# -- fork and exit ----------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_records_with_a_fresh_recorder(runtime: cra.Runtime) -> None:
    sid = runtime.create_session(agent_id="parent", goal="g")
    runtime.record(sid, "x.before", {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            child = runtime.create_session(agent_id="child", goal="g")
            for i in range(100):
                runtime.record(child, "x.n", {"i": i})
            ok = runtime.flush(timeout=20) and runtime.verify(child).valid
            code = 0 if ok and len(runtime.events(child)) == 101 else 1
        finally:
            os._exit(code)
    wait_for_child(pid)
    runtime.record(sid, "x.after", {})  # the parent is unaffected
    assert runtime.flush(timeout=10)
    assert [e.event_type for e in runtime.events(sid)][1:] == ["x.before", "x.after"]


EXIT_SCRIPT = textwrap.dedent(
    """
    import sys
    import cra

    rt = cra.Runtime(trace_file=sys.argv[1])
    sid = rt.create_session(agent_id="exit", goal="no flush, no close")
    for i in range(5000):
        rt.record(sid, "x.n", {"i": i})
    print(sid)
    """
)


def test_exit_hook_flushes(tmp_path: Path) -> None:
    path = tmp_path / "exit.trace.jsonl"
    done = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    sid = done.stdout.strip()
    report = cra.verify_jsonl(path)
    assert report.valid and list(report) == [sid]
    assert report[sid].event_count == 5001


# -- what record() refuses ------------------------------------------------------


@pytest.mark.parametrize("event_type", ["session.started", "action.executed", "tool.call", "x."])
def test_event_type_must_be_custom(runtime: cra.Runtime, event_type: str) -> None:
    sid = runtime.create_session(agent_id="a", goal="g")
    with pytest.raises(ValidationError) as exc:
        runtime.record(sid, event_type, {})
    assert exc.value.code == "INVALID_EVENT_TYPE"


def test_unknown_session(runtime: cra.Runtime) -> None:
    with pytest.raises(NotFoundError) as exc:
        runtime.record(str(uuid.uuid4()), "x.n", {})
    assert exc.value.code == "SESSION_NOT_FOUND"


def test_ended_session(runtime: cra.Runtime) -> None:
    sid = runtime.create_session(agent_id="a", goal="g")
    runtime.end_session(sid)
    with pytest.raises(ExpiredError) as exc:
        runtime.record(sid, "x.n", {})
    assert exc.value.code == "SESSION_ENDED"
    with pytest.raises(ExpiredError):
        runtime.end_session(sid)
    assert [e.event_type for e in runtime.events(sid)] == ["session.started", "session.ended"]


def test_invalid_session_id(runtime: cra.Runtime) -> None:
    with pytest.raises(ValidationError) as exc:
        runtime.record("not-a-uuid", "x.n", {})
    assert exc.value.path == "/session_id"


@pytest.mark.parametrize(
    "payload, path", [([1], ""), ({"a": [float("nan")]}, "/a/0"), ({"o": object()}, "/o")]
)
def test_bad_payload_records_nothing(runtime: cra.Runtime, payload: object, path: str) -> None:
    sid = runtime.create_session(agent_id="a", goal="g")
    with pytest.raises(ValidationError) as exc:
        runtime.record(sid, "x.n", payload)
    assert (exc.value.code, exc.value.path) == ("INVALID_PAYLOAD", path)
    assert runtime.flush(timeout=10)
    assert runtime.stats()["recorded"] == 1
