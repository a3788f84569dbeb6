"""`Committer`: the server answers a request only after its events are kept.

A route that records events (resolve, execute, validate, sessions,
approvals) pushes a commit ticket behind them (`_core.Runtime.barrier`) and
awaits `Committer.kept(ticket)`. The server's event loop is woken by the
flush thread itself through a pipe (`commit_loop.LoopWaiters`); a request
on any other loop is woken by one thread that waits on the core for the
oldest ticket, with the GIL released. The flush thread writes whatever is
queued as one SQLite transaction, so concurrent requests share a commit
(group commit), and the event loop never blocks on the store.

If the store cannot write, every waiting request fails at once with
`TRACE_UNAVAILABLE` (503): its events stay queued and are written when the
store recovers, but nothing was acknowledged. A request whose events are not
written within `timeout` seconds fails the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import os
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from ..errors import CraError, UnavailableError
from .commit_loop import LoopWaiters

__all__ = ["COMMIT_TIMEOUT", "Committer"]

#: How long a request waits for its events to be written before 503.
COMMIT_TIMEOUT = 10.0

#: How long the waiting thread sleeps in the core per round (it is woken
#: by the commit itself, so this only bounds how fast it notices close()).
_ROUND = 0.25

#: (ticket, arrival order, loop, future, deadline on the monotonic clock)
Waiter = Tuple[int, int, asyncio.AbstractEventLoop, "asyncio.Future[None]", float]


class Committer:
    """Wakes requests whose commit tickets are written; see the module."""

    def __init__(self, core: Any, timeout: float = COMMIT_TIMEOUT) -> None:
        self._core = core
        self._timeout = timeout
        self._cond = threading.Condition()
        self._heap: List[Waiter] = []
        self._order = itertools.count()
        self._closed = False
        self._thread: Optional[threading.Thread] = None
        #: The waits of the first loop that asks, woken through a pipe.
        self._loop_waiters: Optional[LoopWaiters] = None

    def ticket(self) -> int:
        """A commit ticket behind everything this thread has recorded."""
        return int(self._core.barrier())

    async def kept(self, ticket: int) -> None:
        """Returns once `ticket` is committed; raises `UnavailableError`
        (503, `TRACE_UNAVAILABLE`) if the store fails or time runs out."""
        if self._core.committed() >= ticket:
            return
        loop = asyncio.get_running_loop()
        lw = self._loop_waiters
        if lw is None and not self._closed and os.name == "posix":
            lw = self._loop_waiters = LoopWaiters(self._core, loop, self._timeout, _unavailable)
        if lw is not None and lw.loop is loop:
            await lw.kept(ticket)
            return
        fut: asyncio.Future[None] = loop.create_future()
        with self._cond:
            if self._closed:
                raise _unavailable("the server is shutting down")
            deadline = time.monotonic() + self._timeout
            heapq.heappush(self._heap, (ticket, next(self._order), loop, fut, deadline))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="cra-commit-waiter", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        await fut

    async def after(self) -> None:
        """Pushes a ticket now and waits until it is kept."""
        await self.kept(self.ticket())

    def close(self) -> None:
        """Fails whoever still waits and stops the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=2 * _ROUND + 1)
        self._release(None, "the server is shutting down")
        if self._loop_waiters is not None:
            self._loop_waiters.close("the server is shutting down")

    # -- the waiting thread ------------------------------------------------
    def _run(self) -> None:
        swept = time.monotonic()
        while True:
            with self._cond:
                while not self._heap and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                oldest = self._heap[0][0]
            failure: Optional[str] = None
            try:
                self._core.wait_committed(oldest, _ROUND)
            except CraError as e:  # the store fails, the recorder is closed
                failure = e.message
            self._release(self._core.committed(), failure)
            now = time.monotonic()
            if now - swept >= _ROUND:
                swept = now
                self._expire(now)

    def _expire(self, now: float) -> None:
        """Fails the waiters whose deadline has passed (one sweep per round,
        not a timer per request)."""
        with self._cond:
            late = [w for w in self._heap if w[4] <= now]
            if not late:
                return
            self._heap = [w for w in self._heap if w[4] > now]
            heapq.heapify(self._heap)
        why = f"the request's events were not written within {self._timeout:g} s; they stay queued"
        by_loop: Dict[asyncio.AbstractEventLoop, List[Tuple[Any, Optional[str]]]] = {}
        for _, _, loop, fut, _ in late:
            by_loop.setdefault(loop, []).append((fut, why))
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle_all, items)

    def _release(self, committed: Optional[int], failure: Optional[str]) -> None:
        """Wakes the waiters whose ticket is `committed` or below; with a
        `failure`, fails every other waiter with it. One wake-up per event
        loop, however many of its requests are released."""
        done: List[Waiter] = []
        failed: List[Waiter] = []
        with self._cond:
            while self._heap and committed is not None and self._heap[0][0] <= committed:
                done.append(heapq.heappop(self._heap))
            if failure is not None:
                failed, self._heap = self._heap, []
        by_loop: Dict[asyncio.AbstractEventLoop, List[Tuple[Any, Optional[str]]]] = {}
        for _, _, loop, fut, _ in done:
            by_loop.setdefault(loop, []).append((fut, None))
        for _, _, loop, fut, _ in failed:
            by_loop.setdefault(loop, []).append((fut, failure or ""))
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle_all, items)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass


def _settle_all(items: List[Tuple[Any, Optional[str]]]) -> None:
    """On the waiters' loop: resolve each future, or fail it."""
    for fut, failure in items:
        if fut.done():
            continue
        if failure is None:
            fut.set_result(None)
        else:
            fut.set_exception(_unavailable(failure))


def _unavailable(message: str) -> UnavailableError:
    return UnavailableError(message, code="TRACE_UNAVAILABLE")
