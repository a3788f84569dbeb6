"""The SQLite store's tables, connection settings and layouts."""

from __future__ import annotations

import sqlite3
from typing import Tuple

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
OF_SESSION = {
    2: "session = (SELECT session FROM session_keys WHERE session_id = ?)",
    0: "session_id = ?",
}
#: Rows per INSERT statement: one statement of many rows binds and steps
#: faster through sqlite3 than `executemany` of a one-row statement.
INSERT_ROWS = 64
INSERT = "INSERT INTO events (session, sequence, event_type, event) VALUES "
#: The layout of schema version 0 has a timestamp column too.
INSERT_V0 = (
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

COLUMNS = (
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


def connect(path: str) -> Tuple[sqlite3.Connection, int]:
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
