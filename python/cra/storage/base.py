"""`Store`: the queries, verification, export and resume every store
answers; `RowsInMemory`: the stores that keep their session rows in Python
(their rules are the core's, `rust/sqlite/rows.rs`)."""

from __future__ import annotations

import json
import os
import threading
from abc import ABC, abstractmethod
from dataclasses import replace
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

    def _cuts(self, session_id: str) -> Optional[List[Dict[str, Any]]]:
        """The retention cuts recorded for a session, oldest first (see
        `cut_record`); None for a store that records none."""
        return None

    def _verify_snapshot(
        self, session_id: str
    ) -> Tuple[Dict[str, Any], List[str], Optional[List[Dict[str, Any]]]]:
        """A session's row, stored event texts and recorded cuts, read
        together (a store that can, as one snapshot)."""
        return self.session(session_id), self._event_texts(session_id), self._cuts(session_id)

    def verify(self, session_id: str) -> ChainVerification:
        """Verifies a session's stored chain (from its retention anchor, if
        cut) and the session's row against it: the stored events must end
        where the row says (`last_sequence`, `last_hash`; fewer is
        `truncated`), be as many as it counts, and start at its anchor,
        which must be the last cut retention recorded (`unrecorded_cut`).
        A chain cut by retention reports `anchored_at` and `retention_cut`."""
        row, texts, cuts = self._verify_snapshot(session_id)
        first = int(row["first_sequence"] or 0)
        anchor = (first, row["anchor_hash"]) if first else None
        v = ChainVerification._from_core(_core.verify_chain_json(texts, anchor))
        cut = _cut_of(row, cuts) if first else None
        v = replace(v, session_id=v.session_id or session_id, retention_cut=cut)
        if not v.valid:
            return v
        fault = _row_fault(row, texts, cuts)
        if fault is None:
            return v
        return replace(v, valid=False, **fault)

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


def _cut_of(row: Dict[str, Any], cuts: Optional[List[Dict[str, Any]]]) -> Dict[str, Any]:
    """What a verification reports of an anchored chain's cut: where it
    starts, the events before it removed by retention, and the recorded cut
    it matches (when, by what), if the store records cuts."""
    first = int(row["first_sequence"])
    out: Dict[str, Any] = {
        "sequence": first,
        "anchor_hash": row["anchor_hash"],
        "removed_events": first,
        "cut_at": None,
        "recorded_by": None,
    }
    last = cuts[-1] if cuts else None
    if last is not None and (last["cut_sequence"], last["anchor_hash"]) == (
        first,
        row["anchor_hash"],
    ):
        out["cut_at"], out["recorded_by"] = last["cut_at"], last["recorded_by"]
    return out


def _row_fault(
    row: Dict[str, Any], texts: List[str], cuts: Optional[List[Dict[str, Any]]]
) -> Optional[Dict[str, Any]]:
    """The first way a session's row disagrees with its (verified) stored
    chain, as the fields of a failed verification; None if they agree."""
    first = int(row["first_sequence"] or 0)
    anchor = row["anchor_hash"]
    if cuts is not None:
        last_cut = cuts[-1] if cuts else None
        recorded = None if last_cut is None else (last_cut["cut_sequence"], last_cut["anchor_hash"])
        if (first != 0 or recorded is not None) and recorded != (first, anchor):
            if last_cut is None:
                why = "retention recorded no cut for this session"
            else:
                why = (
                    f"the last cut retention recorded is at sequence {last_cut['cut_sequence']}"
                    f" ({last_cut['cut_at']})"
                )
            return {
                "error": "unrecorded_cut",
                "index": 0,
                "message": (
                    f"the stored chain starts at sequence {first}, linked to {anchor[:16]}…, "
                    f"but {why}: events before it were removed or the anchor was moved "
                    "outside retention"
                ),
                "expected": None
                if last_cut is None
                else {"first_sequence": recorded[0], "anchor_hash": recorded[1]},  # type: ignore[index]
                "found": {"first_sequence": first, "anchor_hash": anchor},
            }
    n = len(texts)
    if n:
        tail = json.loads(texts[-1])
        have = (int(tail["sequence"]), tail["event_hash"])
    else:
        have = (first - 1, anchor)
    promised = (int(row["last_sequence"]), row["last_hash"])
    if have != promised:
        expected = {"last_sequence": promised[0], "last_hash": promised[1]}
        found = {"last_sequence": have[0], "last_hash": have[1]}
        if have[0] < promised[0]:
            missing = promised[0] - have[0]
            return {
                "error": "truncated",
                "index": n,
                "message": (
                    f"the session's row says its chain ends at sequence {promised[0]}, but the "
                    f"stored events end at {have[0]}: the last {missing} event(s) are missing"
                ),
                "expected": expected,
                "found": found,
            }
        return {
            "error": "row_mismatch",
            "index": max(n - 1, 0),
            "message": (
                f"the session's row says its chain ends at sequence {promised[0]} with hash "
                f"{promised[1][:16]}…, but the last stored event is {have[0]} with hash "
                f"{have[1][:16]}…"
            ),
            "expected": expected,
            "found": found,
        }
    count = int(row["event_count"])
    if count != n:
        return {
            "error": "count_mismatch",
            "index": None,
            "message": (
                f"the session's row counts {count} stored event(s), but {n} are stored "
                f"(sequences {first} to {have[0]})"
            ),
            "expected": {"event_count": count},
            "found": {"event_count": n},
        }
    return None
