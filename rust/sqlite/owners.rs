//! Session owners that are written in the same transaction as their
//! session's first events: the server names the owner of a session it is
//! about to create (`expect`), and the writer that stores a batch holding
//! that session's events inserts the owner row inside the batch's
//! transaction. A session and its owner are kept together or not at all.
//! An owner row is only ever inserted, never replaced.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use rusqlite::{params, Transaction};

use crate::sqlite::event::StoreEvent;

/// The table of owners (session id → the owning key's id).
pub const OWNERS_TABLE: &str = "CREATE TABLE IF NOT EXISTS cra_server_owners (\
     session_id TEXT PRIMARY KEY, key_id TEXT NOT NULL) WITHOUT ROWID";

const INSERT_OWNER: &str =
    "INSERT OR IGNORE INTO cra_server_owners (session_id, key_id) VALUES (?1, ?2)";

/// Owners waiting for their session's events to be written.
#[derive(Default)]
pub struct PendingOwners {
    by_session: Mutex<HashMap<String, String>>,
    /// `by_session.len()`, read without the lock by every batch.
    len: AtomicUsize,
}

impl PendingOwners {
    /// The next batch holding events of `session_id` writes its owner.
    pub fn expect(&self, session_id: &str, key_id: &str) {
        let mut map = self.by_session.lock();
        map.insert(session_id.to_string(), key_id.to_string());
        self.len.store(map.len(), Ordering::SeqCst);
    }

    /// Drops an owner that will not be written (its session was refused).
    pub fn forget(&self, session_id: &str) {
        let mut map = self.by_session.lock();
        map.remove(session_id);
        self.len.store(map.len(), Ordering::SeqCst);
    }

    /// Takes the owners of the sessions in `events` (put them back with
    /// [`PendingOwners::restore`] if the batch is not written).
    pub fn take_for(&self, events: &[StoreEvent]) -> Vec<(String, String)> {
        if self.len.load(Ordering::SeqCst) == 0 {
            return Vec::new();
        }
        let mut map = self.by_session.lock();
        let mut out = Vec::new();
        for e in events {
            if let Some(owner) = map.remove(&e.session_id) {
                out.push((e.session_id.clone(), owner));
            }
        }
        self.len.store(map.len(), Ordering::SeqCst);
        out
    }

    pub fn restore(&self, owners: Vec<(String, String)>) {
        if owners.is_empty() {
            return;
        }
        let mut map = self.by_session.lock();
        map.extend(owners);
        self.len.store(map.len(), Ordering::SeqCst);
    }
}

/// Inserts owner rows inside a batch's transaction.
pub fn insert_owners(tx: &Transaction<'_>, owners: &[(String, String)]) -> rusqlite::Result<()> {
    if owners.is_empty() {
        return Ok(());
    }
    tx.execute_batch(OWNERS_TABLE)?;
    let mut insert = tx.prepare_cached(INSERT_OWNER)?;
    for (sid, key) in owners {
        insert.execute(params![sid, key])?;
    }
    Ok(())
}
