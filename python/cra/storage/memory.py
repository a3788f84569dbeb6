"""`MemoryStore`: events kept in memory, per session."""

from __future__ import annotations

import threading
from typing import Any, Dict, List, Optional, Sequence, Union

from ..trace import TRACEEvent
from .base import RowsInMemory
from .common import apply_retention


class MemoryStore(RowsInMemory):
    """Events in memory, per session (for tests and short-lived tools)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: Dict[str, List[str]] = {}
        self._rows: Dict[str, Dict[str, Any]] = {}

    def write_batch(self, events: Sequence[Union[TRACEEvent, Dict[str, Any], str]]) -> None:
        with self._lock:
            for sid, texts in self._apply_batch(events):
                self._events.setdefault(sid, []).extend(texts)

    def _event_texts(self, session_id: str) -> List[str]:
        with self._lock:
            return list(self._events.get(session_id, []))

    def retention(
        self, max_age_seconds: Optional[float] = None, max_events: Optional[int] = None
    ) -> int:
        """Drops the oldest events (per session), keeping each chain's anchor; returns how many."""
        with self._lock:
            return apply_retention(self._events, self._rows, max_age_seconds, max_events)
