"""`SQLiteStore`: an SQLite database in WAL mode (the default store of
`cra serve`); its tables and connection settings are in `sqlite_schema`."""

from __future__ import annotations

import json
import os
import threading
from itertools import chain
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

from ..trace import TRACEEvent
from .base import Store
from .common import PathLike, Row, apply_retention, scan
from .sqlite_schema import COLUMNS, INSERT, INSERT_ROWS, INSERT_V0, OF_SESSION, connect


class SQLiteStore(Store):
    """An SQLite database in WAL mode: events indexed by session and
    sequence, and a sessions table (the default store of `cra serve`).
    A batch is one transaction; see `_PRAGMAS` for what a commit survives."""

    def __init__(self, path: PathLike) -> None:
        self.path = os.fspath(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        db, version = connect(self.path)
        self._db = db
        #: 2 for the layout of this version, 0 for a store created before it.
        self.schema_version: int = version
        self._insert_many = INSERT + ", ".join(["(?, ?, ?, ?)"] * INSERT_ROWS)
        self._of_session = OF_SESSION[2 if version >= 2 else 0]
        #: Session id -> key in `session_keys` (schema version 2), as committed.
        self._keys: Dict[str, int] = {}
        #: Sessions whose keys the current batch's transaction created.
        self._uncommitted: List[str] = []

    def write_batch(self, events: Sequence[Union[TRACEEvent, Dict[str, Any], str]]) -> None:
        rows, sources = scan(events)
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
                    f"INSERT OR REPLACE INTO sessions VALUES ({', '.join('?' * len(COLUMNS))})",
                    [tuple(r[c] for c in COLUMNS) for r in touched.values()],
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                for sid in self._uncommitted:  # keys that the rollback took back
                    del self._keys[sid]
                raise

    def _insert_events(self, rows: List[Row], sources: List[Any]) -> None:
        """Inserts the rows (within the caller's transaction), `INSERT_ROWS`
        per statement, each session as its key; into the layout of schema
        version 0, by session id and with the timestamps of the sources."""
        db = self._db
        if self.schema_version < 2:
            timestamps = [s["timestamp"] if isinstance(s, dict) else s.timestamp for s in sources]
            db.executemany(INSERT_V0, [(*r[:3], t, r[3]) for r, t in zip(rows, timestamps)])
            return
        values: List[Any] = list(chain.from_iterable(rows))
        keys = self._keys
        new = [sid for sid in set(values[0::4]) if sid not in keys]
        if new:
            self._add_keys(new)
        values[0::4] = map(keys.__getitem__, values[0::4])
        full = 4 * (len(rows) - len(rows) % INSERT_ROWS)
        step = 4 * INSERT_ROWS
        sql = self._insert_many
        for i in range(0, full, step):
            db.execute(sql, values[i : i + step])
        if full < len(values):
            rest = values[full:]
            db.executemany(
                INSERT + "(?, ?, ?, ?)", [rest[i : i + 4] for i in range(0, len(rest), 4)]
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
            f"SELECT {', '.join(COLUMNS)} FROM sessions WHERE session_id = ?", (session_id,)
        )
        r = cur.fetchone()
        return dict(zip(COLUMNS, r)) if r else None

    def _session_rows(self) -> Dict[str, Dict[str, Any]]:
        with self._lock:
            cur = self._db.execute(f"SELECT {', '.join(COLUMNS)} FROM sessions")
            return {r[0]: dict(zip(COLUMNS, r)) for r in cur.fetchall()}

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
                n = apply_retention(events, {sid: row}, max_age_seconds, max_events)
                if n == 0:
                    continue
                db = self._db
                db.execute("BEGIN IMMEDIATE")
                db.execute(
                    f"DELETE FROM events WHERE {self._of_session} AND sequence < ?",
                    (sid, row["first_sequence"]),
                )
                db.execute(
                    f"INSERT OR REPLACE INTO sessions VALUES ({', '.join('?' * len(COLUMNS))})",
                    tuple(row[c] for c in COLUMNS),
                )
                db.execute("COMMIT")
                dropped += n
        return dropped
