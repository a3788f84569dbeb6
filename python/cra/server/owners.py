"""`Owners`: which API key owns each session.

A session belongs to the key that created it; for any other agent key it
does not exist. An owner is written once and never replaced: the row is a
plain INSERT, and a conflict is refused (`OwnerConflict`), never resolved in
favour of the newcomer. Session ids are canonical (lower-case hyphenated,
`cra.server.ids`) before they get here.

Owners are kept in memory and, when the store is a file, in a table of the
same SQLite database, so that after a restart the traces of earlier sessions
are still readable by their owner (and by nobody else). The row is written
by the store's writer in the same transaction as the session's first events
(`SQLiteStore.expect_owner`): a session is never stored without its owner. Keys are never
stored: only a digest that names them (`ApiKey.key_id`). The table is reached
through the core's SQLite connection (`_core.SQLiteDatabase`), as the store
is: in one process, every access to the file goes through one SQLite library.

With a PostgreSQL store (shared by replicas) the owner row is claimed in
it at once, before the session is created (`PostgresStore.claim_owner`, an
insert that never replaces): two replicas can never both own one id.
"""

from __future__ import annotations

import threading
from typing import Any, Dict, Optional

from .. import _core
from ..errors import ConflictError
from ..storage import PostgresStore

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

    def __init__(self, path: Optional[str] = None, store: Optional[Any] = None) -> None:
        self._lock = threading.Lock()
        self._sessions: Dict[str, str] = {}
        self._db: Optional[_core.SQLiteDatabase] = None
        #: The store whose writer inserts the rows (None: memory only).
        self._store = store
        #: A shared store (PostgreSQL) that claims owners itself, at once.
        self._shared = store if isinstance(store, PostgresStore) else None
        if path and path != ":memory:" and self._shared is None:
            db = _core.SQLiteDatabase(path)
            db.query("PRAGMA busy_timeout=30000")
            db.query(_SCHEMA)
            self._db = db

    def claim(self, session_id: str, key_id: str) -> None:
        """Makes `key_id` the owner of `session_id`, a session about to be
        created: at once in memory, and in the store with the session's
        first events. Raises `OwnerConflict` if the session has an owner
        already (even the same one), changing nothing."""
        with self._lock:
            if session_id in self._sessions:
                raise self._conflict(session_id)
            if self._shared is not None:
                if not self._shared.claim_owner(session_id, key_id):
                    raise self._conflict(session_id)
                self._sessions[session_id] = key_id
                return
            if self._db is not None and self._db.query(
                "SELECT 1 FROM cra_server_owners WHERE session_id = ?", (session_id,)
            ):
                raise self._conflict(session_id)
            if self._store is not None and self._db is not None:
                self._store.expect_owner(session_id, key_id)
            self._sessions[session_id] = key_id

    def release(self, session_id: str) -> None:
        """Undoes `claim` for a session that was not created."""
        with self._lock:
            self._sessions.pop(session_id, None)
            if self._store is not None and self._db is not None:
                self._store.forget_owner(session_id)

    @staticmethod
    def _conflict(session_id: str) -> OwnerConflict:
        return OwnerConflict(f"session {session_id} has an owner already", code="SESSION_EXISTS")

    def owner(self, session_id: str) -> Optional[str]:
        """The key id that created the session, or None if none is known."""
        found = self._sessions.get(session_id)
        if found is None and self._shared is not None:
            found = self._shared.owner(session_id)
            if found is not None:
                with self._lock:
                    self._sessions[session_id] = found
            return found
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
