"""`LoopWaiters`: commit waits answered on the event loop itself.

The flush thread writes one byte to a pipe when it publishes a commit (or a
failure) and a notice was asked for (`_core.Runtime.want_commit_notice`);
the loop watches the pipe's read end (`add_reader`) and releases every
request whose ticket is committed. No thread in between takes the GIL: one
wake-up of the loop per commit, however many requests it releases. A single
timer sweeps waits that took longer than the timeout.

Asking for a notice and then reading `committed()` again closes the race
with a commit published in between: either the loop sees the new count, or
the flush thread sees the request and writes the byte.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import os
import time
from typing import Any, Callable, List, Optional, Tuple

__all__ = ["LoopWaiters"]

#: Seconds between sweeps for waits past their deadline.
SWEEP = 0.25

#: (ticket, arrival order, future, deadline on the monotonic clock)
Entry = Tuple[int, int, "asyncio.Future[None]", float]


class LoopWaiters:
    """Commit waits of one event loop, woken through a pipe."""

    def __init__(
        self,
        core: Any,
        loop: asyncio.AbstractEventLoop,
        timeout: float,
        unavailable: Callable[[str], BaseException],
    ) -> None:
        self._core = core
        self.loop = loop
        self._timeout = timeout
        self._unavailable = unavailable
        self._heap: List[Entry] = []
        self._order = itertools.count()
        self._sweeper: Optional[asyncio.TimerHandle] = None
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        loop.add_reader(self._read, self._on_notice)
        core.set_commit_notice_fd(self._write)

    async def kept(self, ticket: int) -> None:
        fut: asyncio.Future[None] = self.loop.create_future()
        heapq.heappush(
            self._heap, (ticket, next(self._order), fut, time.monotonic() + self._timeout)
        )
        self._core.want_commit_notice()
        self._release()
        if self._sweeper is None and self._heap:
            self._sweeper = self.loop.call_later(SWEEP, self._sweep)
        await fut

    def _on_notice(self) -> None:
        try:
            while os.read(self._read, 4096):
                pass
        except BlockingIOError:
            pass
        self._release()

    def _release(self) -> None:
        """Resolves what is committed; fails everything if the store fails;
        asks for the next notice while anyone still waits."""
        while self._heap:
            failing = self._core.failing()
            if failing is not None:
                heap, self._heap = self._heap, []
                for _, _, fut, _ in heap:
                    if not fut.done():
                        fut.set_exception(self._unavailable(_failing_message(failing)))
                return
            committed = self._core.committed()
            while self._heap and self._heap[0][0] <= committed:
                fut = heapq.heappop(self._heap)[2]
                if not fut.done():
                    fut.set_result(None)
            if not self._heap:
                return
            self._core.want_commit_notice()
            if self._core.committed() == committed and self._core.failing() is None:
                return  # the flush thread will write the byte

    def _sweep(self) -> None:
        self._sweeper = None
        now = time.monotonic()
        late = [e for e in self._heap if e[3] <= now]
        if late:
            self._heap = [e for e in self._heap if e[3] > now]
            heapq.heapify(self._heap)
            why = (
                f"the request's events were not written within {self._timeout:g} s; "
                "they stay queued"
            )
            for _, _, fut, _ in late:
                if not fut.done():
                    fut.set_exception(self._unavailable(why))
        if self._heap:
            self._sweeper = self.loop.call_later(SWEEP, self._sweep)

    def close(self, why: str) -> None:
        """Stops the notices and fails whoever still waits (on the loop)."""
        self._core.set_commit_notice_fd(-1)
        heap, self._heap = self._heap, []

        def finish() -> None:
            if self._sweeper is not None:
                self._sweeper.cancel()
            self.loop.remove_reader(self._read)
            for _, _, fut, _ in heap:
                if not fut.done():
                    fut.set_exception(self._unavailable(why))
            os.close(self._read)
            os.close(self._write)

        if self.loop.is_closed():
            os.close(self._read)
            os.close(self._write)
            return
        try:
            self.loop.call_soon_threadsafe(finish)
        except RuntimeError:
            os.close(self._read)
            os.close(self._write)


def _failing_message(why: str) -> str:
    return f"the trace store cannot write ({why}); the events stay queued and are retried"
