//! Connections to a PostgreSQL store: a few kept open and lent out one at
//! a time, a broken one dropped (the next use connects again), and every
//! failure turned into one readable error that never holds the password.

use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use postgres::{Client, Config, NoTls};

use crate::error::{CoreError, Result};

/// Connections kept open for reuse; more are opened while all are lent.
const KEEP_IDLE: usize = 8;

/// How long connecting may take (a store that does not answer fails the
/// request with 503 instead of holding it).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Server-side limits of every connection unless the address gives
/// `options`: statements, lock waits, and a transaction left idle.
const SESSION_LIMITS: &str = "-c statement_timeout=30000 -c lock_timeout=10000 \
     -c idle_in_transaction_session_timeout=60000";

/// How soon a silent connection is probed (a peer that vanished is found
/// in about a minute, not in the system's default two hours).
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);

/// A store's address and its idle connections.
pub struct PgDb {
    dsn: String,
    idle: Mutex<Vec<Client>>,
}

pub type SharedPg = Arc<PgDb>;

/// True for a store address that names PostgreSQL.
pub fn is_postgres_url(text: &str) -> bool {
    text.starts_with("postgresql://") || text.starts_with("postgres://")
}

/// The address without its password, to name in messages.
pub fn redacted(dsn: &str) -> String {
    let Some((scheme, rest)) = dsn.split_once("://") else {
        return dsn.to_string();
    };
    let (auth, host) = match rest.rsplit_once('@') {
        Some(parts) => parts,
        None => return dsn.to_string(),
    };
    let user = auth.split(':').next().unwrap_or("");
    format!("{scheme}://{user}@{host}")
}

/// A PostgreSQL failure as the core's error: the store cannot be used now
/// (503 `TRACE_UNAVAILABLE` at the server), naming the store and the cause.
pub fn fail(dsn: &str, err: &postgres::Error) -> CoreError {
    let cause = match err.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => err.to_string(),
    };
    CoreError::TraceUnavailable(format!("PostgreSQL store {}: {cause}", redacted(dsn)))
}

impl PgDb {
    /// Checks the address by connecting once (the connection is kept).
    pub fn open(dsn: &str) -> Result<Self> {
        if !is_postgres_url(dsn) {
            return Err(CoreError::invalid(
                "INVALID_STORE",
                "/store",
                format!(
                    "{:?} is not a PostgreSQL address (postgresql://USER@HOST:PORT/DB)",
                    redacted(dsn)
                ),
            ));
        }
        let db = PgDb {
            dsn: dsn.to_string(),
            idle: Mutex::new(Vec::new()),
        };
        let first = db.connect()?;
        db.idle.lock().push(first);
        Ok(db)
    }

    pub fn dsn(&self) -> &str {
        &self.dsn
    }

    /// A new connection of its own (the flush thread's). Connecting gives
    /// up after `CONNECT_TIMEOUT` unless the address sets `connect_timeout`.
    pub fn connect(&self) -> Result<Client> {
        let mut config: Config = self.dsn.parse().map_err(|e| fail(&self.dsn, &e))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_options().is_none() {
            // A statement, a lock wait or a transaction left open by a
            // replica that went away never holds the others for long.
            config.options(SESSION_LIMITS);
        }
        config.keepalives_idle(KEEPALIVE_IDLE);
        config.connect(NoTls).map_err(|e| fail(&self.dsn, &e))
    }

    /// Runs `f` on a lent connection; a connection that broke is dropped.
    pub fn with<T>(
        &self,
        f: impl FnOnce(&mut Client) -> std::result::Result<T, postgres::Error>,
    ) -> Result<T> {
        let mut client = match self.idle.lock().pop() {
            Some(c) if !c.is_closed() => c,
            _ => self.connect()?,
        };
        let out = f(&mut client);
        let mut idle = self.idle.lock();
        if client.is_closed() {
            // The connection broke (the server restarted, the network
            // failed): the idle ones most likely did too; connect anew.
            idle.clear();
        } else if idle.len() < KEEP_IDLE {
            idle.push(client);
        }
        drop(idle);
        out.map_err(|e| fail(&self.dsn, &e))
    }

    /// Closes the idle connections (lent ones close when given back).
    pub fn close(&self) {
        self.idle.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_never_shown() {
        assert_eq!(
            redacted("postgresql://cra:s3cret@db:5432/cra"),
            "postgresql://cra@db:5432/cra"
        );
        assert_eq!(redacted("postgresql://db/cra"), "postgresql://db/cra");
        assert!(is_postgres_url("postgres://x/y"));
        assert!(!is_postgres_url("cra.db"));
    }
}
