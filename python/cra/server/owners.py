"""`Owners`: which API key owns each session.

A session belongs to the key that created it; for any other agent key it
does not exist. An owner is written once and never replaced: the row is a
plain INSERT, and a conflict is refused (`OwnerConflict`), never resolved in
favour of the newcomer. Session ids are canonical (lower-case hyphenated,
`cra.server.ids`) before they get here.

Owners are kept in memory and, when the store is a file, in a table of the
same SQLite database, so that after a restart the traces of earlier sessions
are still readable by their owner (and by nobody else). Keys are never
stored: only a digest that names them (`ApiKey.key_id`). The table is reached
through the core's SQLite connection (`_core.SQLiteDatabase`), as the store
is: in one process, every access to the file goes through one SQLite library.
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Dict, Optional

from .. import _core
from ..errors import ConflictError

__all__ = ["OwnerConflict", "Owners"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cra_server_owners (
    session_id TEXT PRIMARY KEY, key_id TEXT NOT NULL
) WITHOUT ROWID
"""


class OwnerConflict(ConflictError):
    """The session already has an owner (which is kept)."""


class Owners:
    """Session → key id, persisted when the store is a file."""

    def __init__(self, path: Optional[str] = None) -> None:
        self._lock = threading.Lock()
        self._sessions: Dict[str, str] = {}
        self._db: Optional[_core.SQLiteDatabase] = None
        if path and path != ":memory:":
            db = _core.SQLiteDatabase(path)
            db.query("PRAGMA busy_timeout=30000")
            db.query(_SCHEMA)
            self._db = db

    def claim(self, session_id: str, key_id: str) -> None:
        """Records that `key_id` created `session_id`. Raises `OwnerConflict`
        if the session has an owner already (even the same one), and lets
        the database's error (a `sqlite3.Error`) through if the row cannot be
        written; in both cases nothing is changed."""
        with self._lock:
            if session_id in self._sessions:
                raise self._conflict(session_id)
            if self._db is not None:
                try:
                    self._db.query(
                        "INSERT INTO cra_server_owners (session_id, key_id) VALUES (?, ?)",
                        (session_id, key_id),
                    )
                except sqlite3.IntegrityError:
                    raise self._conflict(session_id) from None
            self._sessions[session_id] = key_id

    @staticmethod
    def _conflict(session_id: str) -> OwnerConflict:
        return OwnerConflict(f"session {session_id} has an owner already", code="SESSION_EXISTS")

    def owner(self, session_id: str) -> Optional[str]:
        """The key id that created the session, or None if none is known."""
        found = self._sessions.get(session_id)
        if found is not None or self._db is None:
            return found
        with self._lock:
            if self._db is None:
                return None
            rows = self._db.query(
                "SELECT key_id FROM cra_server_owners WHERE session_id = ?", (session_id,)
            )
            if rows:
                self._sessions[session_id] = str(rows[0][0])
                return str(rows[0][0])
        return None

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
