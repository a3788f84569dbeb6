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
//! layout. Both have the same `sessions` table, and the same
//! `retention_cuts` table (created on open when a file lacks it, see
//! [`RETENTION_CUTS_TABLE`]).

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

/// Where retention cut each session's chain: one row per cut (the first
/// kept sequence, the hash it links to, when, and `recorded_by`:
/// `retention` for a cut this version made, `migration` for an anchor a
/// file already had when the table was added). Rows are only ever
/// appended (the triggers of [`RETENTION_CUTS_APPEND_ONLY`] refuse an
/// update or a delete); store verification requires a session's anchor to
/// be its last recorded cut. This is evidence against a careless or partial
/// edit of the file, not against someone who can rewrite all of it.
pub const RETENTION_CUTS_TABLE: &str = "CREATE TABLE IF NOT EXISTS retention_cuts (
    session_id TEXT NOT NULL, cut_sequence INTEGER NOT NULL, anchor_hash TEXT NOT NULL,
    cut_at TEXT NOT NULL, recorded_by TEXT NOT NULL
)";

/// What keeps `retention_cuts` append-only (against mistakes: whoever can
/// write the file can drop a trigger too).
pub const RETENTION_CUTS_APPEND_ONLY: [&str; 3] = [
    "CREATE INDEX IF NOT EXISTS retention_cuts_by_session ON retention_cuts (session_id)",
    "CREATE TRIGGER IF NOT EXISTS retention_cuts_no_update BEFORE UPDATE ON retention_cuts
    BEGIN SELECT RAISE(ABORT, 'retention_cuts is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS retention_cuts_no_delete BEFORE DELETE ON retention_cuts
    BEGIN SELECT RAISE(ABORT, 'retention_cuts is append-only'); END",
];

/// When `retention_cuts` is added to a file that lacks it (a store created
/// before it), the anchors its sessions already have are recorded as cuts
/// `recorded_by` `migration`: what the file said at that moment is taken
/// as it is, and verification says so.
pub const ADOPT_ANCHORS: &str = "INSERT INTO retention_cuts
    SELECT session_id, first_sequence, anchor_hash, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
    'migration' FROM sessions WHERE first_sequence > 0";

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
    add_retention_cuts(&mut db).map_err(fail)?;
    let version: i64 = db
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(fail)?;
    Ok((db, version))
}

/// Creates `retention_cuts` if the file lacks it, adopting the anchors the
/// file's sessions already have ([`ADOPT_ANCHORS`]), in one transaction.
fn add_retention_cuts(db: &mut Connection) -> rusqlite::Result<()> {
    let exists = |db: &Connection| -> rusqlite::Result<bool> {
        db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'retention_cuts'")?
            .exists([])
    };
    if exists(db)? {
        return Ok(());
    }
    let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if !exists(&tx)? {
        tx.execute_batch(RETENTION_CUTS_TABLE)?;
        tx.execute_batch(ADOPT_ANCHORS)?;
        for statement in RETENTION_CUTS_APPEND_ONLY {
            tx.execute_batch(statement)?;
        }
    }
    tx.commit()
}
