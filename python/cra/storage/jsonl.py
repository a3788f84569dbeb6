"""`JSONLStore`: one `.trace.jsonl` file per session in a directory."""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from .. import _core
from ..trace import TRACEEvent
from .base import RowsInMemory
from .common import PathLike, apply_retention, atomic_write

#: What `<id>.anchor.json` keeps of a session whose chain retention cut.
_ANCHOR_KEYS = (
    "trace_id",
    "root_span_id",
    "agent_id",
    "goal",
    "status",
    "started_at",
    "ended_at",
    "first_sequence",
    "anchor_hash",
)


class JSONLStore(RowsInMemory):
    """One `.trace.jsonl` file per session in a directory. On open, a torn
    last line (a crash mid-write) is cut off and reported in `repaired`."""

    def __init__(self, directory: PathLike, max_open_files: int = 64) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._files: OrderedDict[str, Any] = OrderedDict()
        self._max_open = max(1, max_open_files)
        self._rows: Dict[str, Dict[str, Any]] = {}
        self.repaired: List[Tuple[str, int]] = []
        for path in sorted(self.directory.glob("*.trace.jsonl")):
            self._open_existing(path)

    def _path(self, session_id: str) -> Path:
        return self.directory / f"{session_id}.trace.jsonl"

    def _open_existing(self, path: Path) -> None:
        data = path.read_bytes()
        cut = data.rfind(b"\n") + 1
        if cut < len(data):
            with open(path, "r+b") as f:
                f.truncate(cut)
            self.repaired.append((str(path), len(data) - cut))
            data = data[:cut]
        sid = path.name[: -len(".trace.jsonl")]
        anchor = self._anchor_path(sid)
        if anchor.exists():
            # A chain cut by retention: what the dropped events said about the
            # session (its start, agent, goal, root span) starts the row.
            a = json.loads(anchor.read_text(encoding="utf-8"))
            row = _core.new_session_row(sid, a.get("trace_id"))
            row.update({k: a[k] for k in _ANCHOR_KEYS if k in a})
            row["last_sequence"], row["last_hash"] = row["first_sequence"] - 1, row["anchor_hash"]
            self._rows[sid] = row
        lines = [line for line in data.decode("utf-8").splitlines() if line.strip()]
        if lines:
            # The file's events as one batch (they are in sequence order).
            self._apply_batch(lines)
            kept = self._rows.get(sid)
            if kept is not None and kept["trace_id"] is None:  # an anchor without it
                kept["trace_id"] = json.loads(lines[0])["trace_id"]

    def _handle(self, session_id: str) -> Any:
        f = self._files.pop(session_id, None)
        if f is None:
            f = open(self._path(session_id), "a", encoding="utf-8")
            while len(self._files) >= self._max_open:
                self._files.popitem(last=False)[1].close()
        self._files[session_id] = f
        return f

    def write_batch(self, events: Sequence[Union[TRACEEvent, Dict[str, Any], str]]) -> None:
        with self._lock:
            for sid, texts in self._apply_batch(events):
                f = self._handle(sid)
                f.write("\n".join(texts) + "\n")
                f.flush()

    def flush(self) -> None:
        with self._lock:
            for f in self._files.values():
                f.flush()
                os.fsync(f.fileno())

    def close(self) -> None:
        with self._lock:
            for f in self._files.values():
                f.close()
            self._files.clear()

    def _event_texts(self, session_id: str) -> List[str]:
        self.flush()
        path = self._path(session_id)
        if not path.exists():
            return []
        return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def path_of(self, session_id: str) -> Path:
        return self._path(session_id)

    def _anchor_path(self, session_id: str) -> Path:
        return self.directory / f"{session_id}.anchor.json"

    def retention(
        self, max_age_seconds: Optional[float] = None, max_events: Optional[int] = None
    ) -> int:
        """Drops the oldest events per session (each file rewritten atomically);
        where a kept chain starts is written beside it (`<id>.anchor.json`)."""
        dropped = 0
        for sid in list(self._session_rows()):
            texts = self._event_texts(sid)
            with self._lock:
                row = self._rows[sid]
                n = apply_retention({sid: texts}, {sid: row}, max_age_seconds, max_events)
                if n == 0:
                    continue
                f = self._files.pop(sid, None)
                if f is not None:
                    f.close()
                anchor = {k: row[k] for k in _ANCHOR_KEYS}
                atomic_write(self._anchor_path(sid), json.dumps(anchor) + "\n")
                atomic_write(self._path(sid), "".join(t + "\n" for t in texts))
                dropped += n
        return dropped
