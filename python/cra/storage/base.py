"""`Store`: the queries, verification, export and resume every store
answers, and the session-row bookkeeping they share."""

from __future__ import annotations

import json
import os
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from .. import _core
from ..errors import ExpiredError, NotFoundError
from ..trace import ChainVerification
from .common import ROW_EVENTS, ZEROS, PathLike, Row, atomic_write


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

    @staticmethod
    def _new_row(e: Dict[str, Any]) -> Dict[str, Any]:
        return {
            "session_id": e["session_id"],
            "trace_id": e["trace_id"],
            "root_span_id": None,
            "agent_id": None,
            "goal": None,
            "status": "active",
            "started_at": None,
            "ended_at": None,
            "event_count": 0,
            "first_sequence": 0,
            "anchor_hash": ZEROS,
            "last_sequence": -1,
            "last_hash": ZEROS,
        }

    @staticmethod
    def _new_row_for(session_id: str, source: Any) -> Dict[str, Any]:
        """`_new_row` for a scanned event (see `scan`)."""
        if isinstance(source, dict):
            return Store._new_row(source)
        return Store._new_row({"session_id": session_id, "trace_id": source.trace_id})

    @staticmethod
    def _apply_scanned(
        rows: List[Row], sources: List[Any], row_of: Callable[[str, Any], Dict[str, Any]]
    ) -> None:
        """`_apply` for each scanned event (see `scan`), in order, to the row
        `row_of(session id, source)` gives. Only the events that change more
        than the counters (a session's first, `session.started`,
        `session.ended`) are decoded; counters and the last hash are set once
        per session and batch."""
        if not rows:
            return
        sids = [r[0] for r in rows]
        first = sids[0]
        positions: Dict[str, Any]
        if sids.count(first) == len(sids):  # one session: the usual batch
            positions = {first: range(len(rows))}
        else:
            positions = {}
            for i, sid in enumerate(sids):
                at = positions.get(sid)
                if at is None:
                    positions[sid] = [i]
                else:
                    at.append(i)
        types = [r[2] for r in rows]
        special = any(t in types for t in ROW_EVENTS)
        for sid, at in positions.items():
            row = row_of(sid, sources[at[0]])
            for i in at if special else at[:1]:
                if types[i] in ROW_EVENTS or (i == at[0] and row["started_at"] is None):
                    source = sources[i]
                    Store._apply_fields(
                        row, source if isinstance(source, dict) else json.loads(rows[i][3])
                    )
            row["event_count"] += len(at)
            row["last_sequence"] = rows[at[-1]][1]
            source = sources[at[-1]]
            row["last_hash"] = (
                source["event_hash"] if isinstance(source, dict) else source.event_hash
            )

    @staticmethod
    def _apply(row: Dict[str, Any], e: Dict[str, Any]) -> None:
        row["event_count"] += 1
        row["last_sequence"] = e["sequence"]
        row["last_hash"] = e["event_hash"]
        Store._apply_fields(row, e)

    @staticmethod
    def _apply_fields(row: Dict[str, Any], e: Dict[str, Any]) -> None:
        """What an event changes in its session's row besides the counters."""
        if e["event_type"] == "session.started":
            row["root_span_id"] = e["span_id"]
            row["agent_id"] = e["payload"].get("agent_id")
            row["goal"] = e["payload"].get("goal")
            row["started_at"] = e["timestamp"]
        elif e["event_type"] == "session.ended":
            row["status"] = "ended"
            row["ended_at"] = e["timestamp"]
        if row["started_at"] is None:
            row["started_at"] = e["timestamp"]


class RowsInMemory(Store):
    """A store that keeps its session rows in memory (`_rows`, guarded by
    `_lock`): the memory and JSON Lines stores."""

    _lock: threading.Lock
    _rows: Dict[str, Dict[str, Any]]

    def _row_of(self, session_id: str, source: Any) -> Dict[str, Any]:
        row = self._rows.get(session_id)
        if row is None:
            row = self._rows[session_id] = self._new_row_for(session_id, source)
        return row

    def _session_rows(self) -> Dict[str, Dict[str, Any]]:
        with self._lock:
            return {k: dict(v) for k, v in self._rows.items()}
