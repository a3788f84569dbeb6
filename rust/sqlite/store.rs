//! The SQLite store's writer: one connection to a store's file, and the
//! one implementation of writing a batch of events into it (the flush
//! thread's native sink and `SQLiteStore.write_batch` both come here).
//! A batch is one `BEGIN IMMEDIATE` transaction: its events, the session
//! keys it creates and its sessions' rows, all of it or none of it.

use std::collections::HashMap;
use std::sync::LazyLock;

use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, ToSql, Transaction, TransactionBehavior};

use crate::sqlite::error::{SqliteError, SqliteResult};
use crate::sqlite::event::StoreEvent;
use crate::sqlite::owners::insert_owners;
use crate::sqlite::rows::{apply_batch, SessionRow};
use crate::sqlite::schema::{self, Layout, ROWS_PER_INSERT, SESSION_COLUMNS};

static SELECT_ROW: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {} FROM sessions WHERE session_id = ?1",
        SESSION_COLUMNS.join(", ")
    )
});

static REPLACE_ROW: LazyLock<String> = LazyLock::new(|| {
    let marks = vec!["?"; SESSION_COLUMNS.len()].join(", ");
    format!("INSERT OR REPLACE INTO sessions VALUES ({marks})")
});

pub struct SqliteDb {
    path: String,
    /// None once closed.
    conn: Option<Connection>,
    version: i64,
    layout: Layout,
    /// Session id -> its key in `session_keys` (schema version 2), as
    /// committed. Keys are never deleted, so a key once seen stays right.
    keys: HashMap<String, i64>,
}

impl SqliteDb {
    /// Opens (creating if new) the store at `path` (see `schema::open`).
    pub fn open(path: &str) -> SqliteResult<Self> {
        let (conn, version) = schema::open(path)?;
        Ok(SqliteDb {
            path: path.to_string(),
            conn: Some(conn),
            version,
            layout: Layout::of_version(version),
            keys: HashMap::new(),
        })
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// 2 for the layout of this version, 0 for a store created before it.
    pub fn schema_version(&self) -> i64 {
        self.version
    }

    pub fn fail(&self, err: rusqlite::Error) -> SqliteError {
        SqliteError::from_sqlite(&self.path, err)
    }

    pub fn connection(&mut self) -> SqliteResult<&mut Connection> {
        match self.conn.as_mut() {
            Some(c) => Ok(c),
            None => Err(SqliteError::Closed(self.path.clone())),
        }
    }

    /// Stores a batch in one transaction, all of it or none of it: the
    /// events (in batch order) and the rows of their sessions (in order of
    /// first appearance), rows of sessions seen before read and updated.
    pub fn write_batch(&mut self, events: &[StoreEvent]) -> SqliteResult<()> {
        self.write_batch_owned(events, &[])
    }

    /// `write_batch`, with the owner rows of sessions it creates inserted
    /// in the same transaction (see `owners`).
    pub fn write_batch_owned(
        &mut self,
        events: &[StoreEvent],
        owners: &[(String, String)],
    ) -> SqliteResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        let layout = self.layout;
        let SqliteDb { conn, keys, .. } = self;
        let conn = conn
            .as_mut()
            .ok_or_else(|| SqliteError::Closed(path.clone()))?;
        let fail = |e| SqliteError::from_sqlite(&path, e);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        let mut created: Vec<String> = Vec::new();
        let written = write_in(&tx, &path, layout, keys, &mut created, events)
            .and_then(|()| insert_owners(&tx, owners).map_err(fail))
            .and_then(|()| tx.commit().map_err(fail));
        if written.is_err() {
            // The transaction rolled back (dropped, or its commit failed):
            // so did the keys it created.
            for sid in created {
                keys.remove(&sid);
            }
        }
        written
    }

    /// Copies the WAL into the database as far as readers allow (`flush()`).
    pub fn checkpoint(&mut self) -> SqliteResult<()> {
        let path = self.path.clone();
        schema::run(self.connection()?, schema::CHECKPOINT)
            .map_err(|e| SqliteError::from_sqlite(&path, e))
    }

    /// Closes the connection; later calls fail as closed.
    pub fn close(&mut self) -> SqliteResult<()> {
        match self.conn.take() {
            Some(conn) => conn.close().map_err(|(_, e)| self.fail(e)),
            None => Ok(()),
        }
    }
}

/// The body of `write_batch`'s transaction.
fn write_in(
    tx: &Transaction<'_>,
    path: &str,
    layout: Layout,
    keys: &mut HashMap<String, i64>,
    created: &mut Vec<String>,
    events: &[StoreEvent],
) -> SqliteResult<()> {
    let fail = |e| SqliteError::from_sqlite(path, e);
    let rows = apply_batch(events, |sid| {
        let mut select = tx.prepare_cached(&SELECT_ROW).map_err(fail)?;
        let mut found = select.query(params![sid]).map_err(fail)?;
        match found.next().map_err(fail)? {
            Some(r) => Ok(Some(SessionRow::from_sql(r).map_err(fail)?)),
            None => Ok(None),
        }
    })?;
    match layout {
        Layout::Keyed => {
            for (row, _) in &rows {
                let sid = row.session_id.as_str();
                if !keys.contains_key(sid) {
                    let key = key_of(tx, sid, created).map_err(fail)?;
                    keys.insert(sid.to_string(), key);
                }
            }
            let keyed: Vec<i64> = events.iter().map(|e| keys[&e.session_id]).collect();
            insert_rows(tx, layout, events.len(), |i, p| {
                let e = &events[i];
                p.extend([&keyed[i] as &dyn ToSql, &e.sequence, &e.event_type, &e.text]);
            })
            .map_err(fail)?;
        }
        Layout::ById => {
            let timestamps = (0..events.len())
                .map(|i| events[i].timestamp(i))
                .collect::<SqliteResult<Vec<Value>>>()?;
            insert_rows(tx, layout, events.len(), |i, p| {
                let e = &events[i];
                p.extend([
                    &e.session_id as &dyn ToSql,
                    &e.sequence,
                    &e.event_type,
                    &timestamps[i],
                    &e.text,
                ]);
            })
            .map_err(fail)?;
        }
    }
    let mut replace = tx.prepare_cached(&REPLACE_ROW).map_err(fail)?;
    for (row, _) in &rows {
        replace
            .execute(params_from_iter(row.to_sql()))
            .map_err(fail)?;
    }
    Ok(())
}

/// Inserts `n` event rows in order, [`ROWS_PER_INSERT`] per statement
/// (the rest one by one); `bind(i, params)` appends row `i`'s values.
fn insert_rows<'a>(
    tx: &Transaction<'_>,
    layout: Layout,
    n: usize,
    bind: impl Fn(usize, &mut Vec<&'a dyn ToSql>),
) -> rusqlite::Result<()> {
    let full = n - n % ROWS_PER_INSERT;
    let mut params: Vec<&'a dyn ToSql> = Vec::with_capacity(5 * ROWS_PER_INSERT);
    if full > 0 {
        let mut many = tx.prepare_cached(&layout.insert_events(ROWS_PER_INSERT))?;
        for start in (0..full).step_by(ROWS_PER_INSERT) {
            params.clear();
            (start..start + ROWS_PER_INSERT).for_each(|i| bind(i, &mut params));
            many.execute(params.as_slice())?;
        }
    }
    if full < n {
        let mut one = tx.prepare_cached(&layout.insert_events(1))?;
        for i in full..n {
            params.clear();
            bind(i, &mut params);
            one.execute(params.as_slice())?;
        }
    }
    Ok(())
}

/// A session's key in `session_keys`, created (and noted in `created`) if
/// the file has none yet.
fn key_of(tx: &Transaction<'_>, sid: &str, created: &mut Vec<String>) -> rusqlite::Result<i64> {
    let mut find = tx.prepare_cached("SELECT session FROM session_keys WHERE session_id = ?1")?;
    if let Some(r) = find.query(params![sid])?.next()? {
        return r.get(0);
    }
    tx.prepare_cached("INSERT INTO session_keys (session_id) VALUES (?1)")?
        .execute(params![sid])?;
    created.push(sid.to_string());
    Ok(tx.last_insert_rowid())
}
