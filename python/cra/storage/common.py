"""What the stores share below the `Store` class: reading a batch's events
once (`scan`), the retention rule that keeps each chain's anchor, and
atomic file writes."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from ..trace import TRACEEvent

PathLike = Union[str, "os.PathLike[str]"]
ZEROS = "0" * 64


def as_json(e: Union[TRACEEvent, Dict[str, Any], str]) -> str:
    if isinstance(e, TRACEEvent):
        return e.to_json()
    if isinstance(e, str):
        return e
    return json.dumps(e)


#: Event types that change more of a session row than its counters (`Store._apply`).
ROW_EVENTS = frozenset({"session.started", "session.ended"})

#: One event as the stores index it (and the SQLite events table holds it):
#: session id, sequence, event type, JSON text.
Row = Tuple[str, int, str, str]


def scan(
    events: Sequence[Union[TRACEEvent, Dict[str, Any], str]],
) -> Tuple[List[Row], List[Any]]:
    """The indexed fields of each event, and where the rest is read from (the
    core event of a `TRACEEvent`, else the decoded dict). A `TRACEEvent`
    (what the flush thread hands a sink) is read through its core object
    without parsing its JSON; dicts and JSON text are decoded."""
    try:
        cores = [e._e for e in events]  # type: ignore[union-attr]
    except AttributeError:
        cores = None
    if cores is not None:
        rows = [(c.session_id, c.sequence, c.event_type, c.to_json()) for c in cores]
        return rows, cores
    rows = []
    sources: List[Any] = []
    for e in events:
        if isinstance(e, TRACEEvent):
            c = e._e
            rows.append((c.session_id, c.sequence, c.event_type, c.to_json()))
            sources.append(c)
        else:
            text = as_json(e)
            d = json.loads(text)
            rows.append((d["session_id"], d["sequence"], d["event_type"], text))
            sources.append(d)
    return rows, sources


def _age_cutoff(max_age_seconds: float) -> str:
    t = datetime.now(timezone.utc).timestamp() - max_age_seconds
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def apply_retention(
    events: Dict[str, List[str]],
    rows: Dict[str, Dict[str, Any]],
    max_age_seconds: Optional[float],
    max_events: Optional[int],
) -> int:
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
