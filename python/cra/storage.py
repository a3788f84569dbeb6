"""Durable, queryable homes for traces. Each store is a trace sink (pass it
as `cra.Runtime(sinks=[store])`: the flush thread hands it sealed batches)
and answers the same queries:

    write_batch(events)            events(session_id, event_type=, since_sequence=, limit=)
    sessions(status=, limit=, offset=)   verify(session_id)   retention(max_age_seconds=, max_events=)

A store reopened after a restart continues each chain (`resume(runtime,
session_id)`), and retention never cuts a chain without recording where the
kept part starts (its sequence and the hash it links to).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from datetime import datetime, timezone
from itertools import chain
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from . import _core
from .errors import ExpiredError, NotFoundError
from .trace import ChainVerification, TRACEEvent

__all__ = ["JSONLStore", "MemoryStore", "SQLiteStore", "Store"]

PathLike = Union[str, "os.PathLike[str]"]
_ZEROS = "0" * 64


def _as_json(e: Union[TRACEEvent, Dict[str, Any], str]) -> str:
    if isinstance(e, TRACEEvent):
        return e.to_json()
    if isinstance(e, str):
        return e
    return json.dumps(e)


#: Event types that change more of a session row than its counters (`Store._apply`).
_ROW_EVENTS = frozenset({"session.started", "session.ended"})

#: One event as the stores index it (and the SQLite events table holds it):
#: session id, sequence, event type, JSON text.
_Row = Tuple[str, int, str, str]


def _scan(
    events: Sequence[Union[TRACEEvent, Dict[str, Any], str]],
) -> Tuple[List[_Row], List[Any]]:
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
            text = _as_json(e)
            d = json.loads(text)
            rows.append((d["session_id"], d["sequence"], d["event_type"], text))
            sources.append(d)
    return rows, sources


def _age_cutoff(max_age_seconds: float) -> str:
    t = datetime.now(timezone.utc).timestamp() - max_age_seconds
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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
        _atomic_write(target, "".join(t + "\n" for t in texts))
        if anchor is not None:
            doc = {"anchor_version": 1, "anchors": [anchor]}
            _atomic_write(sidecar, json.dumps(doc, indent=2) + "\n")
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
            "anchor_hash": _ZEROS,
            "last_sequence": -1,
            "last_hash": _ZEROS,
        }

    @staticmethod
    def _new_row_for(session_id: str, source: Any) -> Dict[str, Any]:
        """`_new_row` for a scanned event (see `_scan`)."""
        if isinstance(source, dict):
            return Store._new_row(source)
        return Store._new_row({"session_id": session_id, "trace_id": source.trace_id})

    @staticmethod
    def _apply_scanned(
        rows: List[_Row], sources: List[Any], row_of: Callable[[str, Any], Dict[str, Any]]
    ) -> None:
        """`_apply` for each scanned event (see `_scan`), in order, to the row
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
        special = any(t in types for t in _ROW_EVENTS)
        for sid, at in positions.items():
            row = row_of(sid, sources[at[0]])
            for i in at if special else at[:1]:
                if types[i] in _ROW_EVENTS or (i == at[0] and row["started_at"] is None):
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


class MemoryStore(Store):
    """Events in memory, per session (for tests and short-lived tools)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: Dict[str, List[str]] = {}
        self._rows: Dict[str, Dict[str, Any]] = {}

    def write_batch(self, events: Sequence[Union[TRACEEvent, Dict[str, Any], str]]) -> None:
        rows, sources = _scan(events)
        with self._lock:
            self._apply_scanned(rows, sources, self._row_of)
            for r in rows:
                self._events.setdefault(r[0], []).append(r[3])

    def _row_of(self, session_id: str, source: Any) -> Dict[str, Any]:
        row = self._rows.get(session_id)
        if row is None:
            row = self._rows[session_id] = self._new_row_for(session_id, source)
        return row

    def _session_rows(self) -> Dict[str, Dict[str, Any]]:
        with self._lock:
            return {k: dict(v) for k, v in self._rows.items()}

    def _event_texts(self, session_id: str) -> List[str]:
        with self._lock:
            return list(self._events.get(session_id, []))

    def retention(
        self, max_age_seconds: Optional[float] = None, max_events: Optional[int] = None
    ) -> int:
        """Drops the oldest events (per session), keeping each chain's anchor; returns how many."""
        with self._lock:
            return _apply_retention(self._events, self._rows, max_age_seconds, max_events)


def _apply_retention(
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


class JSONLStore(Store):
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
            row = self._new_row({"session_id": sid, "trace_id": a.get("trace_id")})
            row.update({k: a[k] for k in _ANCHOR_KEYS if k in a})
            row["last_sequence"], row["last_hash"] = row["first_sequence"] - 1, row["anchor_hash"]
            self._rows[sid] = row
        for line in data.decode("utf-8").splitlines():
            if line.strip():
                d = json.loads(line)
                row = self._rows.setdefault(d["session_id"], self._new_row(d))
                row["trace_id"] = row["trace_id"] or d["trace_id"]
                self._apply(row, d)

    def _handle(self, session_id: str) -> Any:
        f = self._files.pop(session_id, None)
        if f is None:
            f = open(self._path(session_id), "a", encoding="utf-8")
            while len(self._files) >= self._max_open:
                self._files.popitem(last=False)[1].close()
        self._files[session_id] = f
        return f

    def write_batch(self, events: Sequence[Union[TRACEEvent, Dict[str, Any], str]]) -> None:
        rows, sources = _scan(events)
        by_session: Dict[str, List[str]] = {}
        with self._lock:
            self._apply_scanned(rows, sources, self._row_of)
            for r in rows:
                by_session.setdefault(r[0], []).append(r[3])
            for sid, texts in by_session.items():
                f = self._handle(sid)
                f.write("\n".join(texts) + "\n")
                f.flush()

    def _row_of(self, session_id: str, source: Any) -> Dict[str, Any]:
        row = self._rows.get(session_id)
        if row is None:
            row = self._rows[session_id] = self._new_row_for(session_id, source)
        return row

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

    def _session_rows(self) -> Dict[str, Dict[str, Any]]:
        with self._lock:
            return {k: dict(v) for k, v in self._rows.items()}

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
                n = _apply_retention({sid: texts}, {sid: row}, max_age_seconds, max_events)
                if n == 0:
                    continue
                f = self._files.pop(sid, None)
                if f is not None:
                    f.close()
                anchor = {k: row[k] for k in _ANCHOR_KEYS}
                _atomic_write(self._anchor_path(sid), json.dumps(anchor) + "\n")
                _atomic_write(self._path(sid), "".join(t + "\n" for t in texts))
                dropped += n
        return dropped


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


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


#: The events table of a store created by this version (schema version 2):
#: a rowid table, so that rows (about 0.5-1 KB of JSON each) are appended in
#: arrival order and found by session and sequence through the primary
#: key's index, which is small: a session is an integer key there (from
#: `session_keys`), not its 36-character id. The event type is a column for
#: filtering; the timestamp is read from the JSON. Stores created before
#: (schema version 0) keep their layout: a WITHOUT ROWID table keyed by
#: (session_id, sequence) with a timestamp column, plus an index by event
#: type. Both answer the same queries (`SQLiteStore.schema_version` says
#: which layout a store has; the INSERT and the session condition differ).
_EVENTS_TABLES = (
    """
CREATE TABLE session_keys (session INTEGER PRIMARY KEY, session_id TEXT NOT NULL UNIQUE)
""",
    """
CREATE TABLE events (
    session INTEGER NOT NULL, sequence INTEGER NOT NULL, event_type TEXT NOT NULL,
    event TEXT NOT NULL, PRIMARY KEY (session, sequence)
)
""",
)
#: The events of one session, by the layout's schema version.
_OF_SESSION = {
    2: "session = (SELECT session FROM session_keys WHERE session_id = ?)",
    0: "session_id = ?",
}
#: Rows per INSERT statement: one statement of many rows binds and steps
#: faster through sqlite3 than `executemany` of a one-row statement.
_INSERT_ROWS = 64
_INSERT = "INSERT INTO events (session, sequence, event_type, event) VALUES "
#: The layout of schema version 0 has a timestamp column too.
_INSERT_V0 = (
    "INSERT INTO events (session_id, sequence, event_type, timestamp, event) VALUES (?, ?, ?, ?, ?)"
)
_SESSIONS_TABLE = """
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY, trace_id TEXT, root_span_id TEXT, agent_id TEXT, goal TEXT,
    status TEXT NOT NULL, started_at TEXT, ended_at TEXT, event_count INTEGER NOT NULL,
    first_sequence INTEGER NOT NULL, anchor_hash TEXT NOT NULL,
    last_sequence INTEGER NOT NULL, last_hash TEXT NOT NULL
);
"""
_SCHEMA_VERSION = 2
#: How the store sets up its connection. WAL with synchronous=NORMAL: a
#: commit writes the WAL without fsync, so a committed batch survives a
#: crash of the process (the WAL is in the OS's page cache) but the last
#: commits can be lost on power loss or an OS crash; checkpoints fsync.
#: Pages of 16 KiB (a new store; an existing file keeps its page size) hold
#: more rows per page; the page cache holds a whole batch's new pages (so
#: none is written to the WAL twice) and the upper levels of the index.
_PRAGMAS = (
    "PRAGMA page_size=16384",
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA cache_size=-65536",
)
#: The WAL is checkpointed when it reaches this size, and on `flush()`
#: (SQLite's default of 1,000 pages is crossed by a batch of a few thousand
#: events on nearly every commit, and each checkpoint syncs the database).
#: A checkpointed WAL is cut back to this size.
WAL_CHECKPOINT_BYTES = 64 * 1024 * 1024

_COLUMNS = (
    "session_id",
    "trace_id",
    "root_span_id",
    "agent_id",
    "goal",
    "status",
    "started_at",
    "ended_at",
    "event_count",
    "first_sequence",
    "anchor_hash",
    "last_sequence",
    "last_hash",
)


def _connect(path: str) -> Tuple[sqlite3.Connection, int]:
    """A connection set up as `_PRAGMAS` says, to a database with the
    tables (created if new), and the schema version of its layout."""
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    for pragma in _PRAGMAS:
        db.execute(pragma)
    page_size = db.execute("PRAGMA page_size").fetchone()[0]
    db.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_BYTES // page_size}")
    db.execute(f"PRAGMA journal_size_limit={WAL_CHECKPOINT_BYTES}")
    exists = "SELECT 1 FROM sqlite_master WHERE name = 'events'"
    if db.execute(exists).fetchone() is None:
        db.execute("BEGIN IMMEDIATE")  # one process creates the tables
        try:
            if db.execute(exists).fetchone() is None:
                for table in _EVENTS_TABLES:
                    db.execute(table)
                db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
            db.execute(_SESSIONS_TABLE)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    else:
        db.execute(_SESSIONS_TABLE)
    version: int = db.execute("PRAGMA user_version").fetchone()[0]
    return db, version


class SQLiteStore(Store):
    """An SQLite database in WAL mode: events indexed by session and
    sequence, and a sessions table (the default store of `cra serve`).
    A batch is one transaction; see `_PRAGMAS` for what a commit survives."""

    def __init__(self, path: PathLike) -> None:
        self.path = os.fspath(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        db, version = _connect(self.path)
        self._db = db
        #: 2 for the layout of this version, 0 for a store created before it.
        self.schema_version: int = version
        self._insert_many = _INSERT + ", ".join(["(?, ?, ?, ?)"] * _INSERT_ROWS)
        self._of_session = _OF_SESSION[2 if version >= 2 else 0]
        #: Session id -> key in `session_keys` (schema version 2), as committed.
        self._keys: Dict[str, int] = {}
        #: Sessions whose keys the current batch's transaction created.
        self._uncommitted: List[str] = []

    def write_batch(self, events: Sequence[Union[TRACEEvent, Dict[str, Any], str]]) -> None:
        rows, sources = _scan(events)
        touched: Dict[str, Dict[str, Any]] = {}

        def row_of(session_id: str, source: Any) -> Dict[str, Any]:
            row = touched.get(session_id)
            if row is None:
                row = self._row(session_id) or self._new_row_for(session_id, source)
                touched[session_id] = row
            return row

        with self._lock:
            self._apply_scanned(rows, sources, row_of)
            db = self._db
            # A write transaction from its start: the batch may read session_keys
            # first, and a transaction that has read cannot start writing once
            # another connection to the file (the server's owners) has written.
            db.execute("BEGIN IMMEDIATE")
            self._uncommitted.clear()
            try:
                self._insert_events(rows, sources)
                db.executemany(
                    f"INSERT OR REPLACE INTO sessions VALUES ({', '.join('?' * len(_COLUMNS))})",
                    [tuple(r[c] for c in _COLUMNS) for r in touched.values()],
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                for sid in self._uncommitted:  # keys that the rollback took back
                    del self._keys[sid]
                raise

    def _insert_events(self, rows: List[_Row], sources: List[Any]) -> None:
        """Inserts the rows (within the caller's transaction), `_INSERT_ROWS`
        per statement, each session as its key; into the layout of schema
        version 0, by session id and with the timestamps of the sources."""
        db = self._db
        if self.schema_version < 2:
            timestamps = [s["timestamp"] if isinstance(s, dict) else s.timestamp for s in sources]
            db.executemany(_INSERT_V0, [(*r[:3], t, r[3]) for r, t in zip(rows, timestamps)])
            return
        values: List[Any] = list(chain.from_iterable(rows))
        keys = self._keys
        new = [sid for sid in set(values[0::4]) if sid not in keys]
        if new:
            self._add_keys(new)
        values[0::4] = map(keys.__getitem__, values[0::4])
        full = 4 * (len(rows) - len(rows) % _INSERT_ROWS)
        step = 4 * _INSERT_ROWS
        sql = self._insert_many
        for i in range(0, full, step):
            db.execute(sql, values[i : i + step])
        if full < len(values):
            rest = values[full:]
            db.executemany(
                _INSERT + "(?, ?, ?, ?)", [rest[i : i + 4] for i in range(0, len(rest), 4)]
            )

    def _add_keys(self, session_ids: List[str]) -> None:
        """Puts the sessions' keys in `_keys`, creating those not yet in
        `session_keys` within the caller's transaction (noted in
        `_uncommitted`: `write_batch` forgets them if it rolls back)."""
        db = self._db
        for sid in session_ids:
            found = db.execute(
                "SELECT session FROM session_keys WHERE session_id = ?", (sid,)
            ).fetchone()
            if found is None:
                cur = db.execute("INSERT INTO session_keys (session_id) VALUES (?)", (sid,))
                self._keys[sid] = cur.lastrowid  # type: ignore[assignment]
                self._uncommitted.append(sid)
            else:
                self._keys[sid] = found[0]

    def flush(self) -> None:
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _row(self, session_id: str) -> Optional[Dict[str, Any]]:
        cur = self._db.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM sessions WHERE session_id = ?", (session_id,)
        )
        r = cur.fetchone()
        return dict(zip(_COLUMNS, r)) if r else None

    def _session_rows(self) -> Dict[str, Dict[str, Any]]:
        with self._lock:
            cur = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM sessions")
            return {r[0]: dict(zip(_COLUMNS, r)) for r in cur.fetchall()}

    def _event_texts(self, session_id: str) -> List[str]:
        with self._lock:
            cur = self._db.execute(
                f"SELECT event FROM events WHERE {self._of_session} ORDER BY sequence",
                (session_id,),
            )
            return [r[0] for r in cur.fetchall()]

    def events(
        self,
        session_id: str,
        event_type: Optional[str] = None,
        since_sequence: Optional[int] = None,
        limit: Optional[int] = None,
    ) -> List[Dict[str, Any]]:
        sql = f"SELECT event FROM events WHERE {self._of_session}"
        args: List[Any] = [session_id]
        if event_type is not None:
            sql += " AND event_type = ?"
            args.append(event_type)
        if since_sequence is not None:
            sql += " AND sequence >= ?"
            args.append(since_sequence)
        sql += " ORDER BY sequence"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        with self._lock:
            return [json.loads(r[0]) for r in self._db.execute(sql, args).fetchall()]

    def retention(
        self, max_age_seconds: Optional[float] = None, max_events: Optional[int] = None
    ) -> int:
        """Deletes the oldest events per session; records where each kept chain starts."""
        with self._lock:
            sessions = [
                r[0] for r in self._db.execute("SELECT session_id FROM sessions").fetchall()
            ]
        dropped = 0
        for sid in sessions:
            texts = self._event_texts(sid)
            events = {sid: texts}
            with self._lock:
                row = self._row(sid)
                assert row is not None
                n = _apply_retention(events, {sid: row}, max_age_seconds, max_events)
                if n == 0:
                    continue
                db = self._db
                db.execute("BEGIN IMMEDIATE")
                db.execute(
                    f"DELETE FROM events WHERE {self._of_session} AND sequence < ?",
                    (sid, row["first_sequence"]),
                )
                db.execute(
                    f"INSERT OR REPLACE INTO sessions VALUES ({', '.join('?' * len(_COLUMNS))})",
                    tuple(row[c] for c in _COLUMNS),
                )
                db.execute("COMMIT")
                dropped += n
        return dropped
