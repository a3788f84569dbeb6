//! `cra._core.SQLiteDatabase`: a store's SQLite connection for
//! `cra.storage.SQLiteStore` (its writes, reads and retention), and
//! `cra._core.SQLiteSink`, which `_core.Runtime(sinks=[...])` takes as a
//! native sink: the flush thread then writes the store without the GIL.
//! SQL runs with the GIL released; SQLite's failures are raised as the
//! `sqlite3` exceptions Python's own driver raises for them.

use std::sync::Arc;

use parking_lot::Mutex;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyFloat, PyInt, PyList, PyString, PyTuple};
use rusqlite::types::Value;

use crate::error::CoreError;
use crate::sqlite::error::{SqliteError, SqliteFault};
use crate::sqlite::event::StoreEvent;
use crate::sqlite::owners::PendingOwners;
use crate::sqlite::query::Rows;
use crate::sqlite::schema::SESSION_COLUMNS;
use crate::sqlite::sink::{SharedDb, SqliteSinkFactory};
use crate::sqlite::store::SqliteDb;

use super::event::Event;

/// The `sqlite3` exception for a store's failure (an event the store cannot
/// index is the caller's fault: `cra.errors.ValidationError`).
fn to_py(err: SqliteError) -> PyErr {
    let class = match &err {
        SqliteError::Sqlite { fault, .. } => match fault {
            SqliteFault::Constraint => "IntegrityError",
            SqliteFault::Operational => "OperationalError",
            SqliteFault::Programming => "ProgrammingError",
            SqliteFault::Database => "DatabaseError",
        },
        SqliteError::Closed(_) => "ProgrammingError",
        SqliteError::Event { index, message } => {
            return super::errors::to_py(CoreError::invalid(
                "INVALID_EVENT",
                format!("/events/{index}"),
                message.clone(),
            ))
        }
    };
    Python::attach(|py| {
        let build = || -> PyResult<PyErr> {
            let exc = py
                .import("sqlite3")?
                .getattr(class)?
                .call1((err.to_string(),))?;
            if let SqliteError::Sqlite { code, .. } = &err {
                exc.setattr("sqlite_errorcode", *code)?;
            }
            exc.setattr("code", err.code())?;
            Ok(PyErr::from_value(exc))
        };
        build().unwrap_or_else(|e| e)
    })
}

/// A batch of events as a store reads them: core events or JSON texts;
/// `fault` turns an event the store cannot index into the caller's error.
pub(super) fn read_batch(
    events: &Bound<'_, PyAny>,
    fault: fn(SqliteError) -> PyErr,
) -> PyResult<Vec<StoreEvent>> {
    let mut batch = Vec::with_capacity(events.len().unwrap_or(0));
    for (i, e) in events.try_iter()?.enumerate() {
        let e = e?;
        if let Ok(core) = e.cast::<Event>() {
            batch.push(StoreEvent::sealed(&core.get().0));
        } else if let Ok(text) = e.cast::<PyString>() {
            let event = StoreEvent::from_text(i, text.to_cow()?.into_owned());
            batch.push(event.map_err(fault)?);
        } else {
            return Err(PyTypeError::new_err(format!(
                "event {i} of the batch must be a core event or JSON text, not {}",
                e.get_type().name()?
            )));
        }
    }
    Ok(batch)
}

/// An SQLite value from Python: None, int, float, str or bytes (bools are
/// ints); `what` names the value in the error (a statement parameter, a
/// session row's value).
pub(super) fn sql_value(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Value> {
    if obj.is_none() {
        Ok(Value::Null)
    } else if obj.is_instance_of::<PyInt>() {
        Ok(Value::Integer(obj.extract()?))
    } else if obj.is_instance_of::<PyFloat>() {
        Ok(Value::Real(obj.extract()?))
    } else if let Ok(s) = obj.cast::<PyString>() {
        Ok(Value::Text(s.to_cow()?.into_owned()))
    } else if let Ok(b) = obj.cast::<PyBytes>() {
        Ok(Value::Blob(b.as_bytes().to_vec()))
    } else {
        Err(PyTypeError::new_err(format!(
            "{what} must be None, int, float, str or bytes, not {}",
            obj.get_type().name()?
        )))
    }
}

/// An SQLite value as a Python object.
pub(super) fn py_value<'py>(py: Python<'py>, v: Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Integer(i) => i.into_pyobject(py)?.into_any(),
        Value::Real(f) => f.into_pyobject(py)?.into_any(),
        Value::Text(s) => s.into_pyobject(py)?.into_any(),
        Value::Blob(b) => PyBytes::new(py, &b).into_any(),
    })
}

fn to_values(params: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<Value>> {
    match params {
        None => Ok(Vec::new()),
        Some(p) => p
            .try_iter()?
            .map(|v| sql_value(&v?, "a statement parameter"))
            .collect(),
    }
}

fn to_list<'py>(py: Python<'py>, rows: Rows) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for row in rows {
        let items = row
            .into_iter()
            .map(|v| py_value(py, v))
            .collect::<PyResult<Vec<_>>>()?;
        out.append(PyTuple::new(py, items)?)?;
    }
    Ok(out)
}

#[pyclass(frozen, module = "cra._core", name = "SQLiteDatabase")]
pub struct SQLiteDatabase {
    db: SharedDb,
    path: String,
    schema_version: i64,
    /// Owners its native sink writes with their sessions' first events.
    owners: Arc<PendingOwners>,
}

impl SQLiteDatabase {
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut SqliteDb) -> Result<T, SqliteError> + Send,
    ) -> PyResult<T> {
        let db = &self.db;
        py.detach(|| f(&mut db.lock())).map_err(to_py)
    }
}

#[pymethods]
impl SQLiteDatabase {
    /// Opens the store at `path` (":memory:" for a private database),
    /// creating its tables if the file is new.
    #[new]
    fn new(py: Python<'_>, path: &str) -> PyResult<Self> {
        let db = py.detach(|| SqliteDb::open(path)).map_err(to_py)?;
        Ok(SQLiteDatabase {
            path: path.to_string(),
            schema_version: db.schema_version(),
            db: Arc::new(Mutex::new(db)),
            owners: Arc::default(),
        })
    }

    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    /// 2 for the layout of this version, 0 for a store created before it.
    #[getter]
    fn schema_version(&self) -> i64 {
        self.schema_version
    }

    /// Stores a batch (core events and JSON texts) in one transaction.
    fn write_batch(&self, py: Python<'_>, events: &Bound<'_, PyAny>) -> PyResult<()> {
        let batch = read_batch(events, to_py)?;
        self.with(py, |db| db.write_batch(&batch))
    }

    /// Runs one statement on its own and returns its rows as tuples.
    #[pyo3(signature = (sql, params=None))]
    fn query<'py>(
        &self,
        py: Python<'py>,
        sql: &str,
        params: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let params = to_values(params)?;
        let rows = self.with(py, |db| db.query(sql, &params))?;
        to_list(py, rows)
    }

    /// Runs `(sql, params)` statements in one transaction (IMMEDIATE if
    /// `write`, else one read snapshot) and returns each one's rows.
    #[pyo3(signature = (statements, write=true))]
    fn transaction<'py>(
        &self,
        py: Python<'py>,
        statements: &Bound<'py, PyAny>,
        write: bool,
    ) -> PyResult<Bound<'py, PyList>> {
        let mut parsed = Vec::new();
        for item in statements.try_iter()? {
            let (sql, params): (String, Bound<'py, PyAny>) = item?.extract()?;
            parsed.push((sql, to_values(Some(&params))?));
        }
        let results = self.with(py, |db| db.transaction(&parsed, write))?;
        let out = PyList::empty(py);
        for rows in results {
            out.append(to_list(py, rows)?)?;
        }
        Ok(out)
    }

    /// Checkpoints the WAL (`SQLiteStore.flush()`).
    fn checkpoint(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, SqliteDb::checkpoint)
    }

    /// Closes this connection (a sink's own connection closes with its runtime).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, SqliteDb::close)
    }

    /// This store as a native sink for `_core.Runtime(sinks=[...])`.
    fn sink(&self) -> SQLiteSink {
        SQLiteSink(Arc::new(SqliteSinkFactory {
            store: Arc::clone(&self.db),
            path: self.path.clone(),
            owners: Arc::clone(&self.owners),
        }))
    }

    /// The native sink writes `key_id` as the owner of `session_id` in the
    /// transaction that writes the session's next (first) events.
    fn expect_owner(&self, session_id: &str, key_id: &str) {
        self.owners.expect(session_id, key_id);
    }

    /// Drops an expected owner (the session was not created).
    fn forget_owner(&self, session_id: &str) {
        self.owners.forget(session_id);
    }
}

/// A store the flush thread writes natively (see `sqlite::sink`).
#[pyclass(frozen, module = "cra._core", name = "SQLiteSink")]
pub struct SQLiteSink(pub Arc<SqliteSinkFactory>);

#[pymethods]
impl SQLiteSink {
    #[getter]
    fn path(&self) -> &str {
        &self.0.path
    }
}

/// The columns of the `sessions` table, in table order.
pub fn session_columns(py: Python<'_>) -> PyResult<Bound<'_, PyTuple>> {
    PyTuple::new(py, SESSION_COLUMNS)
}
