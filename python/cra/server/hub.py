"""`StreamHub`: the trace sink that hands sealed events to WebSocket subscribers.

The flush thread hands the hub each sealed batch (it is a sink placed after
the store), and the hub passes each subscriber the events it may see
through that subscriber's event loop (`call_soon_threadsafe`), never
blocking the flush thread. A subscriber that falls too far behind is cut
off (its queue gets `None`; the route closes with code 1013) rather than
slowing the trace down.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import List, Optional, Set, Tuple

from .. import _core
from ..trace import TRACEEvent
from .owners import Owners

__all__ = ["MAX_PENDING_BATCHES", "StreamHub", "Subscriber"]

#: Batches a subscriber may have waiting before it is cut off.
MAX_PENDING_BATCHES = 1024

Item = Tuple[int, str]  # (sequence, event JSON)


class Subscriber:
    """One WebSocket's view: a session (or every visible session) and a queue."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, session_id: Optional[str], owner: Optional[str]
    ) -> None:
        self.loop = loop
        self.session_id = session_id
        self.owner = owner
        self.queue: asyncio.Queue[Optional[List[Item]]] = asyncio.Queue(MAX_PENDING_BATCHES)
        self.overflowed = False

    def offer(self, items: List[Item]) -> None:
        """Runs on the subscriber's loop: queue a batch, or cut off if full."""
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(items)
        except asyncio.QueueFull:
            self.overflowed = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)


class StreamHub:
    """A trace sink that fans sealed batches out to subscribers."""

    def __init__(self, owners: Owners) -> None:
        self._owners = owners
        self._lock = threading.Lock()
        self._subs: Set[Subscriber] = set()
        #: Open while anyone subscribes: with nobody listening the flush
        #: thread skips this sink without taking the GIL.
        self._gate = _core.SinkGate()

    def _sink_gate(self) -> _core.SinkGate:
        return self._gate

    def subscribe(self, sub: Subscriber) -> None:
        with self._lock:
            self._subs.add(sub)
            self._gate.open()

    def unsubscribe(self, sub: Subscriber) -> None:
        with self._lock:
            self._subs.discard(sub)
            if not self._subs:
                self._gate.close()

    def write_batch(self, events: List[TRACEEvent]) -> None:
        """Called on the flush thread; never raises, never blocks."""
        if not self._subs:
            return
        with self._lock:
            subs = list(self._subs)
        texts: dict[int, Item] = {}
        for sub in subs:
            try:
                items = []
                for i, e in enumerate(events):
                    if not self._visible(sub, e):
                        continue
                    item = texts.get(i)
                    if item is None:
                        item = texts[i] = (e.sequence, e.to_json())
                    items.append(item)
                if items:
                    sub.loop.call_soon_threadsafe(sub.offer, items)
            except Exception:  # a closed loop: the socket is gone
                self.unsubscribe(sub)

    def _visible(self, sub: Subscriber, e: TRACEEvent) -> bool:
        if sub.session_id is not None:
            return e.session_id == sub.session_id
        return sub.owner is None or self._owners.owner(e.session_id) == sub.owner

    def close(self) -> None:
        with self._lock:
            subs = list(self._subs)
            self._subs.clear()
            self._gate.close()
        for sub in subs:
            with contextlib.suppress(Exception):
                sub.loop.call_soon_threadsafe(sub.queue.put_nowait, None)
