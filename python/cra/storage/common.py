"""What the stores share below the `Store` class: a batch as the core takes
it (`for_core`), the retention rule that keeps each chain's anchor (and
the record of each cut it makes), and atomic file writes."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

from ..trace import TRACEEvent

PathLike = Union[str, "os.PathLike[str]"]


def _one_for_core(e: Union[TRACEEvent, Dict[str, Any], str]) -> Any:
    core = getattr(e, "_e", None)
    if core is not None:
        return core
    return e if isinstance(e, str) else json.dumps(e)


def for_core(events: Sequence[Union[TRACEEvent, Dict[str, Any], str]]) -> List[Any]:
    """A batch as the core's writers take it (`_core.SQLiteDatabase.write_batch`,
    `_core.apply_session_rows`): the core event of a `TRACEEvent` (read
    without parsing its JSON), else JSON text (a dict is written as
    `json.dumps` makes it)."""
    try:
        return [e._e for e in events]  # type: ignore[union-attr]
    except AttributeError:
        return [_one_for_core(e) for e in events]


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _age_cutoff(max_age_seconds: float) -> str:
    return _stamp(datetime.now(timezone.utc).timestamp() - max_age_seconds)


def now_stamp() -> str:
    """The wall clock as the stores write it (UTC, microseconds)."""
    return _stamp(datetime.now(timezone.utc).timestamp())


def cut_record(
    session_id: str, row: Dict[str, Any], recorded_by: str = "retention"
) -> Dict[str, Any]:
    """The record of a retention cut (a row of `retention_cuts`): where the
    kept chain of `row` now starts, the hash it links to, and when."""
    return {
        "session_id": session_id,
        "cut_sequence": row["first_sequence"],
        "anchor_hash": row["anchor_hash"],
        "cut_at": now_stamp(),
        "recorded_by": recorded_by,
    }


def apply_retention(
    events: Dict[str, List[str]],
    rows: Dict[str, Dict[str, Any]],
    max_age_seconds: Optional[float],
    max_events: Optional[int],
    cuts: Optional[List[Dict[str, Any]]] = None,
) -> int:
    """Drops the oldest events of each session in `events` (texts in
    sequence order) and moves its row's anchor to the first kept event;
    returns how many were dropped. Each cut is appended to `cuts` (see
    `cut_record`), if given."""
    cutoff = _age_cutoff(max_age_seconds) if max_age_seconds is not None else None
    dropped = 0
    for sid, texts in events.items():
        keep_from = 0
        if max_events is not None and len(texts) > max_events:
            keep_from = len(texts) - max_events
        if cutoff is not None:
            while keep_from < len(texts) and json.loads(texts[keep_from])["timestamp"] < cutoff:
                keep_from += 1
        if keep_from == 0:
            continue
        first = json.loads(texts[keep_from]) if keep_from < len(texts) else None
        row = rows[sid]
        if first is None:
            row["first_sequence"], row["anchor_hash"] = row["last_sequence"] + 1, row["last_hash"]
        else:
            row["first_sequence"], row["anchor_hash"] = (
                first["sequence"],
                first["previous_event_hash"],
            )
        if cuts is not None:
            cuts.append(cut_record(sid, row))
        dropped += keep_from
        row["event_count"] -= keep_from
        del texts[:keep_from]
    return dropped


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
