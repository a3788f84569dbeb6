//! Statements a caller gives a store's connection (`SQLiteStore`'s reads
//! and retention, the server's owners table), so that in one process every
//! access to the file goes through the same SQLite library: two copies of
//! SQLite (Python's `sqlite3` and this one) do not see each other's locks
//! on a file, and a connection closed by one can drop the other's.

use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection, TransactionBehavior};

use crate::sqlite::error::{SqliteError, SqliteResult};
use crate::sqlite::store::SqliteDb;

/// The rows a statement answers (none for most writes), each as its values.
pub type Rows = Vec<Vec<Value>>;

fn rows_of(conn: &Connection, sql: &str, params: &[Value]) -> rusqlite::Result<Rows> {
    let mut statement = conn.prepare_cached(sql)?;
    let n = statement.column_count();
    let mut rows = statement.query(params_from_iter(params))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push((0..n).map(|i| r.get(i)).collect::<rusqlite::Result<_>>()?);
    }
    Ok(out)
}

impl SqliteDb {
    /// Runs one statement on its own (autocommit) and returns its rows.
    pub fn query(&mut self, sql: &str, params: &[Value]) -> SqliteResult<Rows> {
        let path = self.path().to_string();
        rows_of(self.connection()?, sql, params).map_err(|e| SqliteError::from_sqlite(&path, e))
    }

    /// Runs statements in one transaction and returns each one's rows:
    /// `write` begins it IMMEDIATE (it takes the write lock first, so it
    /// cannot fail halfway for another writer), else it is one consistent
    /// read snapshot. All of it or none of it.
    pub fn transaction(
        &mut self,
        statements: &[(String, Vec<Value>)],
        write: bool,
    ) -> SqliteResult<Vec<Rows>> {
        let path = self.path().to_string();
        let fail = |e| SqliteError::from_sqlite(&path, e);
        let behavior = if write {
            TransactionBehavior::Immediate
        } else {
            TransactionBehavior::Deferred
        };
        let tx = self
            .connection()?
            .transaction_with_behavior(behavior)
            .map_err(fail)?;
        let out = statements
            .iter()
            .map(|(sql, params)| rows_of(&tx, sql, params))
            .collect::<rusqlite::Result<Vec<Rows>>>()
            .map_err(fail)?;
        tx.commit().map_err(fail)?;
        Ok(out)
    }
}
