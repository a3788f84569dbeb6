"""`SQLiteStore`: an SQLite database in WAL mode (the default store of
`cra serve`). Its connection, tables and batch writer are the Rust core's
(`_core.SQLiteDatabase`); the reads, verification and retention are here.
As a sink of a runtime it is written by the flush thread natively, without
the GIL (see `_native_sink`)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from .. import _core
from ..trace import TRACEEvent
from .base import Store
from .common import PathLike, apply_retention, for_core
from .sqlite_schema import COLUMNS, CUT_COLUMNS, OF_SESSION

_SELECT_ROW = f"SELECT {', '.join(COLUMNS)} FROM sessions"
_SELECT_CUTS = (
    f"SELECT {', '.join(CUT_COLUMNS)} FROM retention_cuts WHERE session_id = ? ORDER BY rowid"
)
_INSERT_CUT = f"INSERT INTO retention_cuts ({', '.join(CUT_COLUMNS)}) VALUES (?, ?, ?, ?, ?)"


class SQLiteStore(Store):
    """An SQLite database in WAL mode: events indexed by session and
    sequence, and a sessions table (the default store of `cra serve`).
    A batch is one transaction (see `rust/sqlite/schema.rs` for what a
    commit survives).

    Within one process, open its file only through cra (this class, or
    `_core.SQLiteDatabase`): Python's `sqlite3` module is a second copy of
    SQLite, which does not see the core's locks on the file."""

    def __init__(self, path: PathLike) -> None:
        self.path = os.fspath(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        #: Serializes this store's retention runs.
        self._lock = threading.Lock()
        self._db = _core.SQLiteDatabase(self.path)
        #: 2 for the layout of this version, 0 for a store created before it.
        self.schema_version: int = self._db.schema_version
        self._of_session = OF_SESSION[2 if self.schema_version >= 2 else 0]

    def write_batch(self, events: Sequence[Union[TRACEEvent, Dict[str, Any], str]]) -> None:
        """Stores a batch in one transaction, all of it or none of it (a
        failure raises the `sqlite3` exception for it)."""
        self._db.write_batch(for_core(events))

    def _native_sink(self) -> Optional[_core.SQLiteSink]:
        """The hook `cra.Runtime(sinks=[...])` looks for: the core sink that
        writes this store from the flush thread without Python. None when a
        subclass overrides `write_batch` or `flush` (the runtime then calls
        them, as it calls any Python sink)."""
        cls = type(self)
        if cls.write_batch is not SQLiteStore.write_batch or cls.flush is not SQLiteStore.flush:
            return None
        return self._db.sink()

    def expect_owner(self, session_id: str, key_id: str) -> None:
        """Has the native sink write `key_id` as the owner of `session_id`
        (table `cra_server_owners`) in the same transaction as the
        session's first events: both are kept, or neither."""
        self._db.expect_owner(session_id, key_id)

    def forget_owner(self, session_id: str) -> None:
        """Drops an owner from `expect_owner` whose session was not created."""
        self._db.forget_owner(session_id)

    def flush(self) -> None:
        """Checkpoints the WAL into the database file."""
        self._db.checkpoint()

    def close(self) -> None:
        self._db.close()

    def _row(self, session_id: str) -> Optional[Dict[str, Any]]:
        rows = self._db.query(_SELECT_ROW + " WHERE session_id = ?", (session_id,))
        return dict(zip(COLUMNS, rows[0])) if rows else None

    def _session_rows(self) -> Dict[str, Dict[str, Any]]:
        return {r[0]: dict(zip(COLUMNS, r)) for r in self._db.query(_SELECT_ROW)}

    def _texts_sql(self) -> str:
        return f"SELECT event FROM events WHERE {self._of_session} ORDER BY sequence"

    def _event_texts(self, session_id: str) -> List[str]:
        return [r[0] for r in self._db.query(self._texts_sql(), (session_id,))]

    def _cuts(self, session_id: str) -> Optional[List[Dict[str, Any]]]:
        return [dict(zip(CUT_COLUMNS, r)) for r in self._db.query(_SELECT_CUTS, (session_id,))]

    def _verify_snapshot(
        self, session_id: str
    ) -> Tuple[Dict[str, Any], List[str], Optional[List[Dict[str, Any]]]]:
        """The row, events and cuts as one read snapshot: a batch (its
        events and row in one transaction) or a retention cut committed
        meanwhile is wholly in it or wholly out."""
        rows, texts, cuts = self._db.transaction(
            [
                (_SELECT_ROW + " WHERE session_id = ?", (session_id,)),
                (self._texts_sql(), (session_id,)),
                (_SELECT_CUTS, (session_id,)),
            ],
            write=False,
        )
        if not rows:
            return self.session(session_id), [], None  # raises SESSION_NOT_FOUND
        return (
            dict(zip(COLUMNS, rows[0])),
            [t for (t,) in texts],
            [dict(zip(CUT_COLUMNS, r)) for r in cuts],
        )

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
        return [json.loads(r[0]) for r in self._db.query(sql, args)]

    def retention(
        self, max_age_seconds: Optional[float] = None, max_events: Optional[int] = None
    ) -> int:
        """Deletes the oldest events per session; records where each kept
        chain starts (the row's anchor) and appends the cut to
        `retention_cuts`, which store verification checks the anchor
        against. A session's row and events are read as one snapshot;
        the cut is written in one transaction that leaves the counters of
        batches committed in between (by the flush thread) as they are."""
        dropped = 0
        with self._lock:
            for (sid,) in self._db.query("SELECT session_id FROM sessions"):
                found, texts = self._db.transaction(
                    [
                        (_SELECT_ROW + " WHERE session_id = ?", (sid,)),
                        (self._texts_sql(), (sid,)),
                    ],
                    write=False,
                )
                if not found:
                    continue
                row = dict(zip(COLUMNS, found[0]))
                cuts: List[Dict[str, Any]] = []
                n = apply_retention(
                    {sid: [t for (t,) in texts]}, {sid: row}, max_age_seconds, max_events, cuts
                )
                if n == 0:
                    continue
                (cut,) = cuts
                self._db.transaction(
                    [
                        (
                            f"DELETE FROM events WHERE {self._of_session} AND sequence < ?",
                            (sid, row["first_sequence"]),
                        ),
                        (
                            "UPDATE sessions SET first_sequence = ?, anchor_hash = ?,"
                            " event_count = event_count - ? WHERE session_id = ?",
                            (row["first_sequence"], row["anchor_hash"], n, sid),
                        ),
                        (_INSERT_CUT, tuple(cut[c] for c in CUT_COLUMNS)),
                    ]
                )
                dropped += n
        return dropped
