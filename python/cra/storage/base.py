"""`Store`: the queries, verification, export and resume every store
answers; `RowsInMemory`: the stores that keep their session rows in Python
(their rules are the core's, `rust/sqlite/rows.rs`)."""

from __future__ import annotations

import json
import os
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from .. import _core
from ..errors import ExpiredError, NotFoundError
from ..trace import ChainVerification, TRACEEvent
from .common import PathLike, atomic_write, for_core


class Store(ABC):
    """What every store shares: session bookkeeping and verification."""

    @abstractmethod
    def _session_rows(self) -> Dict[str, Dict[str, Any]]:
        """Every session's row, by id."""

    @abstractmethod
    def _event_texts(self, session_id: str) -> List[str]:
        """A session's stored events as JSON texts, in sequence order."""

    def events(
        self,
        session_id: str,
        event_type: Optional[str] = None,
        since_sequence: Optional[int] = None,
        limit: Optional[int] = None,
    ) -> List[Dict[str, Any]]:
        """A session's events as dicts, in sequence order, filtered."""
        out = []
        for text in self._event_texts(session_id):
            e = json.loads(text)
            if event_type is not None and e["event_type"] != event_type:
                continue
            if since_sequence is not None and e["sequence"] < since_sequence:
                continue
            out.append(e)
            if limit is not None and len(out) >= limit:
                break
        return out

    def sessions(
        self, status: Optional[str] = None, limit: Optional[int] = None, offset: int = 0
    ) -> List[Dict[str, Any]]:
        """Sessions by start time: id, agent, goal, status, counts, ends of the chain."""
        rows = sorted(
            self._session_rows().values(), key=lambda r: (r["started_at"] or "", r["session_id"])
        )
        if status is not None:
            rows = [r for r in rows if r["status"] == status]
        rows = rows[offset:]
        return rows[:limit] if limit is not None else rows

    def session(self, session_id: str) -> Dict[str, Any]:
        row = self._session_rows().get(session_id)
        if row is None:
            raise NotFoundError(
                f"session {session_id} is not in this store", code="SESSION_NOT_FOUND"
            )
        return row

    def verify(self, session_id: str) -> ChainVerification:
        """Verifies a session's stored chain (from its retention anchor, if cut)."""
        row = self.session(session_id)
        anchor = None
        if row["first_sequence"]:
            anchor = (row["first_sequence"], row["anchor_hash"])
        report = _core.verify_chain_json(self._event_texts(session_id), anchor)
        return ChainVerification._from_core(report)

    def export(self, session_id: str, path: PathLike) -> Optional[Dict[str, Any]]:
        """Writes a session's stored events to `path` as JSON Lines (pure
        events, one a line; written atomically) and returns its anchor, or None.

        When retention removed the session's oldest events, the file starts
        mid-chain; where it starts (the *anchor*: first sequence, the hash it
        links to, the hash algorithm) is then written beside it as
        `<path>.anchor.json`, which `cra trace verify` and `cra.verify_jsonl`
        pick up. A stale anchor file from an earlier export is removed."""
        texts = self._event_texts(session_id)
        if not texts:
            raise NotFoundError(
                f"no events for session {session_id} in this store", code="SESSION_NOT_FOUND"
            )
        target = Path(path)
        sidecar = Path(os.fspath(target) + ".anchor.json")
        row = self.session(session_id)
        anchor: Optional[Dict[str, Any]] = None
        if row["first_sequence"]:
            anchor = {
                "session_id": session_id,
                "first_sequence": row["first_sequence"],
                "previous_event_hash": row["anchor_hash"],
                "hash_algorithm": self.verify(session_id).algorithm,
            }
        atomic_write(target, "".join(t + "\n" for t in texts))
        if anchor is not None:
            doc = {"anchor_version": 1, "anchors": [anchor]}
            atomic_write(sidecar, json.dumps(doc, indent=2) + "\n")
        elif sidecar.exists():
            sidecar.unlink()
        return anchor

    def resume(self, runtime: Any, session_id: str) -> str:
        """Continues an open session in a (restarted) runtime: the next event
        gets the next sequence and links to the last stored hash."""
        row = self.session(session_id)
        if row["status"] != "active":
            raise ExpiredError(
                f"session {session_id} has ended; it cannot be resumed", code="SESSION_ENDED"
            )
        core = getattr(runtime, "_core", runtime)
        resumed: str = core.resume_session(
            session_id,
            row["trace_id"],
            row["root_span_id"],
            row["agent_id"] or "",
            row["goal"] or "",
            row["started_at"],
            row["last_sequence"] + 1,
            row["last_hash"],
        )
        return resumed


class RowsInMemory(Store):
    """A store that keeps its session rows in memory (`_rows`, guarded by
    `_lock`): the memory and JSON Lines stores. What a batch does to the
    rows is the core's rule (`rust/sqlite/rows.rs`, the SQLite writer's
    too), applied once per batch."""

    _lock: threading.Lock
    _rows: Dict[str, Dict[str, Any]]

    def _apply_batch(
        self, events: Sequence[Union[TRACEEvent, Dict[str, Any], str]]
    ) -> List[Tuple[str, List[str]]]:
        """Applies a batch to `_rows` (call with `_lock` held), all of it or
        none of it, and returns its events' JSON texts by session, sessions
        in order of first appearance, texts in batch order."""
        return _core.apply_session_rows(self._rows, for_core(events))

    def _session_rows(self) -> Dict[str, Dict[str, Any]]:
        with self._lock:
            return {k: dict(v) for k, v in self._rows.items()}
