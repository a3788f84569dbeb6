"""The SQLite store's layouts as its reads see them. The tables, pragmas
and the writer live in the Rust core (`rust/sqlite/schema.rs`,
`rust/sqlite/store.rs`); a store's connection is a `_core.SQLiteDatabase`,
so that in one process every access to the file goes through one SQLite
library (Python's `sqlite3` is another copy, which would not see the
core's locks on the file).

Schema version 2 (a store created by this version): events by session key
(from `session_keys`) and sequence in a rowid table; schema version 0 (stores
created before): a WITHOUT ROWID table keyed by (session_id, sequence) with a
timestamp column. Both answer the same queries; `SQLiteStore.schema_version`
says which layout a store has."""

from __future__ import annotations

from typing import Tuple

from .. import _core

#: The events of one session, by the layout's schema version.
OF_SESSION = {
    2: "session = (SELECT session FROM session_keys WHERE session_id = ?)",
    0: "session_id = ?",
}

#: The columns of the sessions table, in table order (as the core creates it).
COLUMNS: Tuple[str, ...] = _core.SQLITE_SESSION_COLUMNS

#: The columns of `retention_cuts` (`rust/sqlite/schema.rs`): one row per
#: retention cut, only ever appended.
CUT_COLUMNS: Tuple[str, ...] = (
    "session_id",
    "cut_sequence",
    "anchor_hash",
    "cut_at",
    "recorded_by",
)
