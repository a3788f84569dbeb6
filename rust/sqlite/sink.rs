//! An SQLite store as a sink of the flush thread: batches are written by
//! the Rust writer (`store`) on the flush thread, with no Python
//! and no GIL. A store's file gets a connection of the flush thread's own
//! (WAL: the store's readers are not blocked by its writes); a private
//! in-memory database (":memory:") exists only in the connection that made
//! it, so the sink shares the store's.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::{CoreError, Result};
use crate::sqlite::event::StoreEvent;
use crate::sqlite::owners::PendingOwners;
use crate::sqlite::store::SqliteDb;
use crate::trace::sink::{SealedBatch, Sink, SinkFactory};

/// A store's connection, shared by its users in this process.
pub type SharedDb = Arc<Mutex<SqliteDb>>;

/// True for a path that names a private, in-memory database.
pub fn is_in_memory(path: &str) -> bool {
    path == ":memory:" || path.is_empty()
}

pub struct SqliteSink(SharedDb, Arc<PendingOwners>);

impl Sink for SqliteSink {
    /// One transaction: the events, their sessions' rows, and the owners
    /// expected for those sessions.
    fn write_batch(&mut self, events: &SealedBatch) -> Result<()> {
        let batch: Vec<StoreEvent> = events.iter().map(StoreEvent::sealed).collect();
        let owners = self.1.take_for(&batch);
        let written = self.0.lock().write_batch_owned(&batch, &owners);
        if written.is_err() {
            self.1.restore(owners);
        }
        written.map_err(CoreError::from)
    }

    /// A WAL checkpoint, as `SQLiteStore.flush()` does.
    fn sync(&mut self) -> Result<()> {
        self.0.lock().checkpoint().map_err(CoreError::from)
    }
}

/// Opens the sink of one store: `store` is the store's own connection
/// and `path` its file.
pub struct SqliteSinkFactory {
    pub store: SharedDb,
    pub path: String,
    /// Owners to write with their sessions' first events.
    pub owners: Arc<PendingOwners>,
}

impl SqliteSinkFactory {
    fn own_connection(&self) -> Result<Box<dyn Sink>> {
        let db = SqliteDb::open(&self.path).map_err(CoreError::from)?;
        Ok(Box::new(SqliteSink(
            Arc::new(Mutex::new(db)),
            Arc::clone(&self.owners),
        )))
    }
}

impl SinkFactory for SqliteSinkFactory {
    fn open(&self) -> Result<Box<dyn Sink>> {
        if is_in_memory(&self.path) {
            return Ok(Box::new(SqliteSink(
                Arc::clone(&self.store),
                Arc::clone(&self.owners),
            )));
        }
        self.own_connection()
    }

    /// In a forked child: a new connection, never the parent's (SQLite's
    /// rule: a connection does not cross `fork()`; its lock may even be
    /// held by a thread that does not exist here). WAL locks order the
    /// child's commits with the parent's. An in-memory store cannot be
    /// shared with a child: the child writes to a new one of its own.
    fn open_in_child(&self) -> Result<Box<dyn Sink>> {
        self.own_connection()
    }
}
