//! `cra._core.PostgresDatabase`: a PostgreSQL store for
//! `cra.storage.PostgresStore` and `cra serve --store postgresql://…`
//! (its schema, owners and reads; `Runtime.share_state` shares a runtime's
//! limits, resolutions and approvals through it, `py/shared.rs`),
//! and `cra._core.PostgresSink`, which `_core.Runtime(sinks=[...])` takes
//! as the chains' authority, written by the flush thread without the GIL.
//! Every query runs with the GIL released; a failure is the core's
//! `TRACE_UNAVAILABLE` error naming the store (never its password).

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::pg::db::{redacted, PgDb, SharedPg};
use crate::pg::{schema, sessions, PendingDocs, PgSinkFactory};
use crate::sqlite::rows::SessionRow;
use crate::trace::event::TraceEvent;
use crate::trace::sink::SinkFactory;

use super::errors::IntoPyResult;
use super::event::Event;
use super::rows::write_row;

#[pyclass(frozen, module = "cra._core", name = "PostgresDatabase")]
pub struct PostgresDatabase {
    pub db: SharedPg,
    /// Resolution documents its sink writes with the next batch.
    pub docs: Arc<PendingDocs>,
}

fn row_dict(py: Python<'_>, row: SessionRow) -> PyResult<Bound<'_, PyDict>> {
    let dict = PyDict::new(py);
    write_row(&dict, row)?;
    Ok(dict)
}

#[pymethods]
impl PostgresDatabase {
    /// Connects to the store at `dsn` (`postgresql://USER@HOST:PORT/DB`).
    #[new]
    fn new(py: Python<'_>, dsn: &str) -> PyResult<Self> {
        let db = py.detach(|| PgDb::open(dsn)).py()?;
        Ok(PostgresDatabase {
            db: Arc::new(db),
            docs: Arc::default(),
        })
    }

    /// The address, without its password.
    #[getter]
    fn url(&self) -> String {
        redacted(self.db.dsn())
    }

    /// The database's schema version (0: none yet).
    #[getter]
    fn schema_version(&self, py: Python<'_>) -> PyResult<i64> {
        py.detach(|| schema::version(&self.db)).py()
    }

    /// The schema version this cra writes.
    #[staticmethod]
    fn latest_schema_version() -> i64 {
        schema::latest()
    }

    /// Upgrades the schema to `target` (default: the latest); returns the
    /// versions before and after.
    #[pyo3(signature = (target=None))]
    fn migrate(&self, py: Python<'_>, target: Option<i64>) -> PyResult<(i64, i64)> {
        py.detach(|| schema::migrate(&self.db, target)).py()
    }

    /// Makes the store ready for use: a new database gets the latest
    /// schema; an older or newer one is refused with what to do.
    fn ready(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| schema::ready(&self.db)).py()
    }

    /// This store as the chains' authority for `_core.Runtime(sinks=[...])`.
    fn sink(&self) -> PostgresSink {
        PostgresSink(Arc::new(PgSinkFactory {
            db: Arc::clone(&self.db),
            docs: Arc::clone(&self.docs),
        }))
    }

    /// Makes `key_id` the owner of a new session; False if it has one.
    fn claim_owner(&self, py: Python<'_>, session_id: &str, key_id: &str) -> PyResult<bool> {
        py.detach(|| sessions::claim_owner(&self.db, session_id, key_id))
            .py()
    }

    fn owner(&self, py: Python<'_>, session_id: &str) -> PyResult<Option<String>> {
        py.detach(|| sessions::owner(&self.db, session_id)).py()
    }

    /// The session of a stored approval, or None.
    fn approval_session(&self, py: Python<'_>, approval_id: &str) -> PyResult<Option<String>> {
        py.detach(|| sessions::approval_session(&self.db, approval_id))
            .py()
    }

    /// Stores sealed core events, one transaction, as the flush thread
    /// does (a chain another writer moved is re-sealed onto its head).
    fn write_events(&self, py: Python<'_>, events: Vec<PyRef<'_, Event>>) -> PyResult<()> {
        let batch: Vec<Arc<TraceEvent>> = events.iter().map(|e| Arc::clone(&e.0)).collect();
        let factory = PgSinkFactory {
            db: Arc::clone(&self.db),
            docs: Arc::default(),
        };
        py.detach(|| factory.open()?.write_chained(&batch).map(|_| ()))
            .py()
    }

    /// A session's row as a dict (the SQLite store's columns), or None.
    fn session_row<'py>(
        &self,
        py: Python<'py>,
        session_id: &str,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let row = py
            .detach(|| sessions::session_row(&self.db, session_id))
            .py()?;
        row.map(|r| row_dict(py, r)).transpose()
    }

    /// The session's status in the store, or None.
    fn session_status(&self, py: Python<'_>, session_id: &str) -> PyResult<Option<String>> {
        py.detach(|| sessions::status(&self.db, session_id)).py()
    }

    /// The sessions' rows, oldest first: those `owner` owns (None: all),
    /// with `status` (None: any).
    #[pyo3(signature = (owner=None, status=None))]
    fn session_rows<'py>(
        &self,
        py: Python<'py>,
        owner: Option<&str>,
        status: Option<&str>,
    ) -> PyResult<Bound<'py, PyList>> {
        let rows = py
            .detach(|| sessions::sessions_of(&self.db, owner, status))
            .py()?;
        let list = PyList::empty(py);
        for r in rows {
            list.append(row_dict(py, r)?)?;
        }
        Ok(list)
    }

    /// A session's stored events as JSON texts, in sequence order,
    /// filtered in the query (type, first sequence, count).
    #[pyo3(signature = (session_id, event_type=None, since_sequence=None, limit=None))]
    fn event_texts(
        &self,
        py: Python<'_>,
        session_id: &str,
        event_type: Option<&str>,
        since_sequence: Option<i64>,
        limit: Option<i64>,
    ) -> PyResult<Vec<String>> {
        py.detach(|| sessions::event_texts(&self.db, session_id, event_type, since_sequence, limit))
            .py()
    }

    /// Runs `SELECT 1`: an error says why the store cannot be used now.
    fn ping(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.db.with(|c| c.simple_query("SELECT 1").map(|_| ())))
            .py()
    }

    /// Closes the idle connections.
    fn close(&self) {
        self.db.close();
    }
}

/// A PostgreSQL store the flush thread writes natively (see `pg::sink`).
#[pyclass(frozen, module = "cra._core", name = "PostgresSink")]
pub struct PostgresSink(pub Arc<PgSinkFactory>);

#[pymethods]
impl PostgresSink {
    #[getter]
    fn url(&self) -> String {
        redacted(self.0.db.dsn())
    }
}
