"""`JSONLStore`: one `.trace.jsonl` file per session in a directory."""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple, Union

from .. import _core
from ..trace import TRACEEvent
from .base import RowsInMemory
from .common import PathLike, apply_retention, atomic_write, cut_record

#: The directory's record of retention cuts, one JSON object a line, only
#: ever appended (see `common.cut_record`).
CUTS_FILE = "retention_cuts.jsonl"

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

log = logging.getLogger("cra.storage")

#: A side file holding a torn line: `<session_id>.trace.jsonl.torn-<offset>[.<n>]`.
_TORN_NAME = re.compile(r"^(?P<sid>.*)\.trace\.jsonl\.torn-(?P<offset>\d+)(?:\.\d+)?$")


def torn_file_name(path: Path, offset: int, n: int = 0) -> Path:
    """The side file for a torn line that starts at byte `offset` of `path`:
    `<name>.torn-<offset>`, then `<name>.torn-<offset>.<n>` when taken (the
    rule of the runtime's file sink, `rust/trace/jsonl.rs`)."""
    return path.with_name(f"{path.name}.torn-{offset}" + (f".{n}" if n else ""))


def _set_aside(path: Path, offset: int, torn: bytes) -> Path:
    """Copies `torn` to a new side file beside `path`, fsynced (and its
    directory), and returns it. An existing side file is never overwritten;
    one that already holds exactly these bytes (an open that crashed before
    ending the line) is reused."""
    n = 0
    while True:
        side = torn_file_name(path, offset, n)
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
            fd = os.open(side, flags, 0o666)
        except FileExistsError:
            if side.read_bytes() == torn:
                return side
            n += 1
            continue
        with os.fdopen(fd, "wb") as f:
            f.write(torn)
            f.flush()
            os.fsync(f.fileno())
        try:
            dfd = os.open(path.parent, os.O_RDONLY)
        except OSError:  # a platform that cannot open a directory
            return side
        try:
            os.fsync(dfd)
        except OSError:
            pass
        finally:
            os.close(dfd)
        return side


def _is_json(raw: bytes) -> bool:
    try:
        json.loads(raw)
    except ValueError:
        return False
    return True


def _event_lines(data: bytes, torn: Dict[int, Set[bytes]]) -> List[str]:
    """The event lines of a file: split on `\n` only (never on U+2028 or
    another separator inside a JSON string), a `\r` before it dropped,
    blank lines skipped, and a torn line that was set aside (a side file
    named for its offset holds exactly its bytes) left out, unless it is
    whole JSON (an event that lacked only its newline)."""
    lines: List[str] = []
    offset = 0
    for raw in data.split(b"\n"):
        start, offset = offset, offset + len(raw) + 1
        if raw in torn.get(start, ()) and not _is_json(raw):
            continue
        text = raw.decode("utf-8")
        if text.endswith("\r"):
            text = text[:-1]
        if text.strip():
            lines.append(text)
    return lines


class JSONLStore(RowsInMemory):
    """One `.trace.jsonl` file per session in a directory. Opening never
    rewrites a file: a torn last line (a crash mid-write) is copied to a side
    file beside it (`<file>.torn-<offset>`, fsynced) and ended with a
    newline, so the file keeps every byte and new events start on a line of
    their own. Each is reported in `repaired` (file, bytes) and `torn_files`
    (file, side file), and logged; the store's reads leave such a line out."""

    def __init__(self, directory: PathLike, max_open_files: int = 64) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._files: OrderedDict[str, Any] = OrderedDict()
        self._max_open = max(1, max_open_files)
        self._rows: Dict[str, Dict[str, Any]] = {}
        self.repaired: List[Tuple[str, int]] = []
        self.torn_files: List[Tuple[str, str]] = []
        # Per session: the offsets of its torn lines set aside, and their bytes.
        self._torn: Dict[str, Dict[int, Set[bytes]]] = {}
        for side in self.directory.glob("*.trace.jsonl.torn-*"):
            m = _TORN_NAME.match(side.name)
            if m is not None and side.is_file():
                at = self._torn.setdefault(m["sid"], {})
                at.setdefault(int(m["offset"]), set()).add(side.read_bytes())
        for path in sorted(self.directory.glob("*.trace.jsonl")):
            self._open_existing(path)
        #: Each retention cut, in order, as `CUTS_FILE` holds them.
        self._cut_log: List[Dict[str, Any]] = []
        cuts = self.directory / CUTS_FILE
        if cuts.exists():
            for line in cuts.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    self._cut_log.append(json.loads(line))
        else:
            # A directory from before cuts were recorded: its anchors are
            # taken as they are, recorded by `migration`.
            adopted = [
                cut_record(sid, row, "migration")
                for sid, row in sorted(self._rows.items())
                if row["first_sequence"]
            ]
            if adopted:
                atomic_write(cuts, "".join(json.dumps(c) + "\n" for c in adopted))
                self._cut_log = adopted

    def _path(self, session_id: str) -> Path:
        return self.directory / f"{session_id}.trace.jsonl"

    def _open_existing(self, path: Path) -> None:
        data = path.read_bytes()
        sid = path.name[: -len(".trace.jsonl")]
        cut = data.rfind(b"\n") + 1
        if cut < len(data):
            torn = data[cut:]
            side = _set_aside(path, cut, torn)  # durable before the line is ended
            with open(path, "ab") as f:
                f.write(b"\n")
                f.flush()
                os.fsync(f.fileno())
            data += b"\n"
            self._torn.setdefault(sid, {}).setdefault(cut, set()).add(torn)
            self.repaired.append((str(path), len(torn)))
            self.torn_files.append((str(path), str(side)))
            log.warning(
                "%s ended in a torn line (%d bytes at offset %d): copied to %s and "
                "ended with a newline; no byte of the file was changed",
                path,
                len(torn),
                cut,
                side,
            )
        anchor = self._anchor_path(sid)
        if anchor.exists():
            # A chain cut by retention: what the dropped events said about the
            # session (its start, agent, goal, root span) starts the row.
            a = json.loads(anchor.read_text(encoding="utf-8"))
            row = _core.new_session_row(sid, a.get("trace_id"))
            row.update({k: a[k] for k in _ANCHOR_KEYS if k in a})
            row["last_sequence"], row["last_hash"] = row["first_sequence"] - 1, row["anchor_hash"]
            self._rows[sid] = row
        lines = _event_lines(data, self._torn.get(sid, {}))
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
        return _event_lines(path.read_bytes(), self._torn.get(session_id, {}))

    def _cuts(self, session_id: str) -> Optional[List[Dict[str, Any]]]:
        with self._lock:
            return [dict(c) for c in self._cut_log if c["session_id"] == session_id]

    def _verify_snapshot(
        self, session_id: str
    ) -> Tuple[Dict[str, Any], List[str], Optional[List[Dict[str, Any]]]]:
        with self._lock:
            row = self._rows.get(session_id)
            if row is not None:
                f = self._files.get(session_id)
                if f is not None:
                    f.flush()
                path = self._path(session_id)
                data = path.read_bytes() if path.exists() else b""
                texts = _event_lines(data, self._torn.get(session_id, {}))
                cuts = [dict(c) for c in self._cut_log if c["session_id"] == session_id]
                return dict(row), texts, cuts
        return self.session(session_id), [], None  # raises SESSION_NOT_FOUND

    def _record_cut(self, cut: Dict[str, Any]) -> None:
        """Appends a cut to `CUTS_FILE` (fsynced) and to `_cut_log`."""
        with open(self.directory / CUTS_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps(cut) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self._cut_log.append(cut)

    def path_of(self, session_id: str) -> Path:
        return self._path(session_id)

    def _anchor_path(self, session_id: str) -> Path:
        return self.directory / f"{session_id}.anchor.json"

    def retention(
        self, max_age_seconds: Optional[float] = None, max_events: Optional[int] = None
    ) -> int:
        """Drops the oldest events per session (each file rewritten atomically);
        where a kept chain starts is written beside it (`<id>.anchor.json`)
        and appended to the directory's `retention_cuts.jsonl`."""
        dropped = 0
        for sid in list(self._session_rows()):
            texts = self._event_texts(sid)
            with self._lock:
                row = self._rows[sid]
                cuts: List[Dict[str, Any]] = []
                n = apply_retention({sid: texts}, {sid: row}, max_age_seconds, max_events, cuts)
                if n == 0:
                    continue
                self._record_cut(cuts[0])
                f = self._files.pop(sid, None)
                if f is not None:
                    f.close()
                anchor = {k: row[k] for k in _ANCHOR_KEYS}
                atomic_write(self._anchor_path(sid), json.dumps(anchor) + "\n")
                atomic_write(self._path(sid), "".join(t + "\n" for t in texts))
                dropped += n
        return dropped
