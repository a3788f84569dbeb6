//! The SQLite store's tables, connection settings and layouts: the one
//! place they are written down (`cra.storage.SQLiteStore` opens its file
//! through [`open`] too, via `cra._core`).
//!
//! Schema version 2 (a store created by this version): `session_keys` maps
//! each session id to a small integer; `events` is a rowid table (rows of
//! 0.5-1 KB of JSON appended in arrival order), keyed by (session key,
//! sequence), with the event type as a column for filtering; the timestamp
//! is read from the JSON. Schema version 0 (stores created before): a
//! WITHOUT ROWID `events` table keyed by (session id, sequence) with a
//! timestamp column, plus an index by event type; such a file keeps its
//! layout. Both have the same `sessions` table.

use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use crate::sqlite::error::{SqliteError, SqliteResult};

/// The layout of a store created by this version.
pub const SCHEMA_VERSION: i64 = 2;

/// The tables of a new store (schema version 2), created in this order.
pub const EVENTS_TABLES: [&str; 2] = [
    "CREATE TABLE session_keys (session INTEGER PRIMARY KEY, session_id TEXT NOT NULL UNIQUE)",
    "CREATE TABLE events (
    session INTEGER NOT NULL, sequence INTEGER NOT NULL, event_type TEXT NOT NULL,
    event TEXT NOT NULL, PRIMARY KEY (session, sequence)
)",
];

/// One session a row: what its events say about it, and both ends of its
/// stored chain (`first_sequence`/`anchor_hash`: where retention cut it).
pub const SESSIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY, trace_id TEXT, root_span_id TEXT, agent_id TEXT, goal TEXT,
    status TEXT NOT NULL, started_at TEXT, ended_at TEXT, event_count INTEGER NOT NULL,
    first_sequence INTEGER NOT NULL, anchor_hash TEXT NOT NULL,
    last_sequence INTEGER NOT NULL, last_hash TEXT NOT NULL
)";

/// The columns of `sessions`, in table order.
pub const SESSION_COLUMNS: [&str; 13] = [
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
];

/// How every connection to a store is set up. WAL with synchronous=NORMAL:
/// a commit writes the WAL without fsync, so a committed batch survives a
/// crash of the process (the WAL is in the OS's page cache) but the last
/// commits can be lost on power loss or an OS crash; checkpoints fsync.
/// Pages of 16 KiB (a new store; an existing file keeps its page size) hold
/// more rows per page; the page cache holds a whole batch's new pages (so
/// none is written to the WAL twice) and the upper levels of the index.
pub const PRAGMAS: [&str; 4] = [
    "PRAGMA page_size=16384",
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA cache_size=-65536",
];

/// The WAL is checkpointed when it reaches this size, and on `sync()`
/// (SQLite's default of 1,000 pages is crossed by a batch of a few thousand
/// events on nearly every commit, and each checkpoint syncs the database).
/// A checkpointed WAL is cut back to this size.
pub const WAL_CHECKPOINT_BYTES: i64 = 64 * 1024 * 1024;

/// What a flush does to the WAL: copies what it can into the database
/// without waiting for readers.
pub const CHECKPOINT: &str = "PRAGMA wal_checkpoint(PASSIVE)";

/// How long a connection waits for another writer (the flush thread, a
/// retention run, another process) before a statement fails as busy.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Event rows per INSERT statement: one statement of many rows binds and
/// steps faster than as many one-row statements.
pub const ROWS_PER_INSERT: usize = 64;

/// Which layout a store's file has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Schema version 2: events by session key (see the module docs).
    Keyed,
    /// Schema version 0: events by session id, with a timestamp column.
    ById,
}

impl Layout {
    pub fn of_version(version: i64) -> Self {
        if version >= SCHEMA_VERSION {
            Layout::Keyed
        } else {
            Layout::ById
        }
    }

    /// The statement that inserts `rows` event rows of this layout.
    pub fn insert_events(self, rows: usize) -> String {
        let (columns, marks) = match self {
            Layout::Keyed => ("session, sequence, event_type, event", "(?, ?, ?, ?)"),
            Layout::ById => (
                "session_id, sequence, event_type, timestamp, event",
                "(?, ?, ?, ?, ?)",
            ),
        };
        format!(
            "INSERT INTO events ({columns}) VALUES {}",
            vec![marks; rows].join(", ")
        )
    }
}

/// Runs a statement that may answer rows (a pragma), ignoring them.
pub fn run(db: &Connection, sql: &str) -> rusqlite::Result<()> {
    let mut statement = db.prepare(sql)?;
    let mut rows = statement.query([])?;
    while rows.next()?.is_some() {}
    Ok(())
}

/// A connection to `path` (":memory:" for a private database) set up as
/// [`PRAGMAS`] say, with the tables created if the file is new, and the
/// schema version of its layout.
pub fn open(path: &str) -> SqliteResult<(Connection, i64)> {
    let fail = |e| SqliteError::from_sqlite(path, e);
    let db = Connection::open(path).map_err(fail)?;
    db.busy_timeout(BUSY_TIMEOUT).map_err(fail)?;
    for pragma in PRAGMAS {
        run(&db, pragma).map_err(fail)?;
    }
    let page_size: i64 = db
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .map_err(fail)?;
    run(
        &db,
        &format!(
            "PRAGMA wal_autocheckpoint={}",
            WAL_CHECKPOINT_BYTES / page_size
        ),
    )
    .map_err(fail)?;
    run(
        &db,
        &format!("PRAGMA journal_size_limit={WAL_CHECKPOINT_BYTES}"),
    )
    .map_err(fail)?;
    create_tables(db, path)
}

fn create_tables(mut db: Connection, path: &str) -> SqliteResult<(Connection, i64)> {
    let fail = |e| SqliteError::from_sqlite(path, e);
    let exists = |db: &Connection| -> rusqlite::Result<bool> {
        db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'events'")?
            .exists([])
    };
    if exists(&db).map_err(fail)? {
        db.execute_batch(SESSIONS_TABLE).map_err(fail)?;
    } else {
        // One process creates the tables; dropping the transaction on an
        // error rolls it back.
        let tx = db
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        if !exists(&tx).map_err(fail)? {
            for table in EVENTS_TABLES {
                tx.execute_batch(table).map_err(fail)?;
            }
            tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
                .map_err(fail)?;
        }
        tx.execute_batch(SESSIONS_TABLE).map_err(fail)?;
        tx.commit().map_err(fail)?;
    }
    let version: i64 = db
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(fail)?;
    Ok((db, version))
}
