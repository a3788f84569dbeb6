"""`MemoryStore`: events kept in memory, per session."""

from __future__ import annotations

import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from ..trace import TRACEEvent
from .base import RowsInMemory
from .common import apply_retention


class MemoryStore(RowsInMemory):
    """Events in memory, per session (for tests and short-lived tools)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: Dict[str, List[str]] = {}
        self._rows: Dict[str, Dict[str, Any]] = {}
        #: Each retention cut, in order (see `common.cut_record`).
        self._cut_log: List[Dict[str, Any]] = []

    def write_batch(self, events: Sequence[Union[TRACEEvent, Dict[str, Any], str]]) -> None:
        with self._lock:
            for sid, texts in self._apply_batch(events):
                self._events.setdefault(sid, []).extend(texts)

    def _event_texts(self, session_id: str) -> List[str]:
        with self._lock:
            return list(self._events.get(session_id, []))

    def _cuts(self, session_id: str) -> Optional[List[Dict[str, Any]]]:
        with self._lock:
            return [dict(c) for c in self._cut_log if c["session_id"] == session_id]

    def _verify_snapshot(
        self, session_id: str
    ) -> Tuple[Dict[str, Any], List[str], Optional[List[Dict[str, Any]]]]:
        with self._lock:
            row = self._rows.get(session_id)
            if row is not None:
                cuts = [dict(c) for c in self._cut_log if c["session_id"] == session_id]
                return dict(row), list(self._events.get(session_id, [])), cuts
        return self.session(session_id), [], None  # raises SESSION_NOT_FOUND

    def retention(
        self, max_age_seconds: Optional[float] = None, max_events: Optional[int] = None
    ) -> int:
        """Drops the oldest events (per session), keeping each chain's anchor; returns how many."""
        with self._lock:
            return apply_retention(
                self._events, self._rows, max_age_seconds, max_events, self._cut_log
            )
