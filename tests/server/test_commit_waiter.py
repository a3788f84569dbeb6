"""`cra.server.commit.Committer` on its own: a request waits for its commit
ticket without blocking its event loop, concurrent waiters are released by
one commit, a stuck store times them out as 503, a failing one fails them."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, List

import cra
import cra.errors
import pytest
from cra.errors import UnavailableError
from cra.server.commit import Committer


class Gate:
    """A sink that blocks while `open` is clear and can fail."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.failing = False
        self.seen: List[str] = []

    def write_batch(self, events: List[Any]) -> None:
        self.open.wait()
        if self.failing:
            raise OSError("No space left on device")
        self.seen.extend(e.event_type for e in events)


def test_waiters_are_released_after_their_events_and_the_loop_keeps_running() -> None:
    sink = Gate()
    rt = cra.Runtime(sinks=[sink])
    sid = rt.create_session("agent", "goal")
    committer = Committer(rt._core, timeout=10)

    async def main() -> int:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.005)

        t = asyncio.create_task(ticker())
        waits = []
        for i in range(8):
            rt.record(sid, "x.step", {"i": i})
            waits.append(asyncio.create_task(committer.after()))
        await asyncio.sleep(0.2)
        assert not any(w.done() for w in waits) and sink.seen == []
        sink.open.set()
        await asyncio.gather(*waits)
        assert sink.seen.count("x.step") == 8  # all written before any answer
        t.cancel()
        return ticks

    assert asyncio.run(main()) > 10  # the loop ran while they waited
    committer.close()
    rt.close()


def test_a_stuck_store_times_waiters_out() -> None:
    sink = Gate()
    rt = cra.Runtime(sinks=[sink])
    sid = rt.create_session("agent", "goal")
    committer = Committer(rt._core, timeout=0.3)
    rt.record(sid, "x.step", {})
    started = time.monotonic()
    with pytest.raises(UnavailableError) as e:
        asyncio.run(committer.after())
    assert e.value.code == "TRACE_UNAVAILABLE" and "not written within" in e.value.message
    assert time.monotonic() - started < 3
    sink.open.set()
    committer.close()
    rt.close()


def test_a_failing_store_fails_waiters_at_once() -> None:
    sink = Gate()
    sink.failing = True
    sink.open.set()
    rt = cra.Runtime(sinks=[sink])
    sid = rt.create_session("agent", "goal")
    committer = Committer(rt._core, timeout=30)
    rt.record(sid, "x.step", {})
    started = time.monotonic()
    with pytest.raises(UnavailableError) as e:
        asyncio.run(committer.after())
    assert "No space left" in e.value.message and time.monotonic() - started < 5
    committer.close()
    sink.failing = False
    with pytest.raises(cra.errors.SinkError):  # the failure, reported once
        rt.close()
    assert rt.close()


def test_a_second_event_loop_is_served_by_the_waiting_thread() -> None:
    sink = Gate()
    sink.open.set()
    rt = cra.Runtime(sinks=[sink])
    sid = rt.create_session("agent", "goal")
    committer = Committer(rt._core, timeout=10)
    for n in range(3):  # the first loop gets the pipe, the others the thread
        rt.record(sid, "x.step", {"n": n})
        asyncio.run(committer.after())
        assert sink.seen.count("x.step") == n + 1
    committer.close()
    rt.close()
