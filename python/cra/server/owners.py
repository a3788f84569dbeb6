"""`Owners`: which API key owns each session, and which session each approval is of.

A session belongs to the key that created it; any other key is
told it does not exist.

Owners are kept in memory and, when the store is a file, in a table of the
same SQLite database, so that after a restart the traces of earlier sessions
are still readable by their owner (and by nobody else). Keys are never
stored: only a digest that names them (`key_id`). The table is reached
through the core's SQLite connection (`_core.SQLiteDatabase`), as the store
is: in one process, every access to the file goes through one SQLite library.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Dict, Optional

from .. import _core

__all__ = ["Owners"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cra_server_owners (
    session_id TEXT PRIMARY KEY, key_id TEXT NOT NULL
) WITHOUT ROWID
"""

#: Approval ids remembered (they expire with their resolutions anyway).
MAX_APPROVALS = 200_000


class Owners:
    """Session → key id, persisted; approval id → session id, in memory."""

    def __init__(self, path: Optional[str] = None) -> None:
        self._lock = threading.Lock()
        self._sessions: Dict[str, str] = {}
        self._approvals: OrderedDict[str, str] = OrderedDict()
        self._db: Optional[_core.SQLiteDatabase] = None
        if path and path != ":memory:":
            db = _core.SQLiteDatabase(path)
            db.query("PRAGMA busy_timeout=30000")
            db.query(_SCHEMA)
            self._db = db

    def claim(self, session_id: str, key_id: str) -> None:
        """Records that `key_id` created `session_id`."""
        with self._lock:
            self._sessions[session_id] = key_id
            if self._db is not None:
                self._db.query(
                    "INSERT OR REPLACE INTO cra_server_owners VALUES (?, ?)", (session_id, key_id)
                )

    def owner(self, session_id: str) -> Optional[str]:
        """The key id that created the session, or None if none is known."""
        found = self._sessions.get(session_id)
        if found is not None or self._db is None:
            return found
        with self._lock:
            rows = self._db.query(
                "SELECT key_id FROM cra_server_owners WHERE session_id = ?", (session_id,)
            )
            if rows:
                self._sessions[session_id] = rows[0][0]
                return str(rows[0][0])
        return None

    def note_approval(self, approval_id: str, session_id: str) -> None:
        """Remembers the session an approval id was minted for."""
        with self._lock:
            self._approvals[approval_id] = session_id
            while len(self._approvals) > MAX_APPROVALS:
                self._approvals.popitem(last=False)

    def approval_session(self, approval_id: str) -> Optional[str]:
        return self._approvals.get(approval_id)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
