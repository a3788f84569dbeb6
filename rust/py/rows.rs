//! `cra._core.apply_session_rows`: the session-row rules of
//! `sqlite::rows` for the stores that keep their rows in Python (memory,
//! JSON Lines). One call per batch: the rows are read from and written
//! back to the caller's dicts, and the events' texts come back by session.

use pyo3::exceptions::{PyKeyError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use rusqlite::types::Value;

use crate::error::CoreError;
use crate::sqlite::error::SqliteError;
use crate::sqlite::rows::{apply_batch, SessionRow};
use crate::sqlite::schema::SESSION_COLUMNS;

use super::sqlite::{py_value, read_batch, sql_value};

fn to_py_err(err: SqliteError) -> PyErr {
    match err {
        SqliteError::Event { index, message } => super::errors::to_py(CoreError::invalid(
            "INVALID_EVENT",
            format!("/events/{index}"),
            message,
        )),
        other => PyTypeError::new_err(other.to_string()),
    }
}

fn read_row(dict: &Bound<'_, PyDict>) -> PyResult<SessionRow> {
    let get = |key: &str| -> PyResult<Value> {
        match dict.get_item(key)? {
            Some(v) => sql_value(&v, "a session row's value"),
            None => Err(PyKeyError::new_err(key.to_string())),
        }
    };
    let event_count = match get("event_count")? {
        Value::Integer(i) => i,
        _ => {
            return Err(PyTypeError::new_err(
                "a session row's event_count must be an int",
            ))
        }
    };
    let session_id = match get("session_id")? {
        Value::Text(s) => s,
        _ => {
            return Err(PyTypeError::new_err(
                "a session row's session_id must be a str",
            ))
        }
    };
    Ok(SessionRow {
        session_id,
        trace_id: get("trace_id")?,
        root_span_id: get("root_span_id")?,
        agent_id: get("agent_id")?,
        goal: get("goal")?,
        status: get("status")?,
        started_at: get("started_at")?,
        ended_at: get("ended_at")?,
        event_count,
        first_sequence: get("first_sequence")?,
        anchor_hash: get("anchor_hash")?,
        last_sequence: get("last_sequence")?,
        last_hash: get("last_hash")?,
    })
}

/// Writes a row's columns into `dict` (keys in table order).
pub(super) fn write_row(dict: &Bound<'_, PyDict>, row: SessionRow) -> PyResult<()> {
    let py = dict.py();
    for (key, value) in SESSION_COLUMNS.iter().zip(row.to_sql()) {
        dict.set_item(key, py_value(py, value)?)?;
    }
    Ok(())
}

/// A new session's row (active, no events), as a dict in table order.
#[pyfunction]
#[pyo3(signature = (session_id, trace_id))]
pub fn new_session_row<'py>(
    py: Python<'py>,
    session_id: &str,
    trace_id: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let trace_id = match trace_id {
        Some(t) => sql_value(t, "a session row's value")?,
        None => Value::Null,
    };
    let dict = PyDict::new(py);
    write_row(&dict, SessionRow::new(session_id, trace_id))?;
    Ok(dict)
}

/// Applies a batch (core events and JSON texts) to `rows` (session id ->
/// row dict, updated in place; a new session's row is added), all of it or
/// none of it, and returns the events' JSON texts by session, sessions in
/// order of first appearance and texts in batch order.
#[pyfunction]
pub fn apply_session_rows<'py>(
    rows: &Bound<'py, PyDict>,
    events: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyList>> {
    let py = rows.py();
    let batch = read_batch(events, to_py_err)?;
    let mut failed: Option<PyErr> = None;
    let changed = apply_batch(&batch, |sid| match rows.get_item(sid) {
        Ok(None) => Ok(None),
        Ok(Some(d)) => match d
            .cast::<PyDict>()
            .map_err(PyErr::from)
            .and_then(|d| read_row(d))
        {
            Ok(row) => Ok(Some(row)),
            Err(e) => {
                failed = Some(e);
                Err(SqliteError::Closed(String::new()))
            }
        },
        Err(e) => {
            failed = Some(e);
            Err(SqliteError::Closed(String::new()))
        }
    });
    let changed = match (changed, failed) {
        (_, Some(e)) => return Err(e),
        (r, None) => r.map_err(to_py_err)?,
    };
    let out = PyList::empty(py);
    let mut texts: Vec<Option<String>> = batch.into_iter().map(|e| Some(e.text)).collect();
    for (row, at) in changed {
        let sid = PyString::new(py, &row.session_id);
        match rows.get_item(&sid)? {
            Some(d) => write_row(d.cast::<PyDict>()?, row)?,
            None => {
                let d = PyDict::new(py);
                write_row(&d, row)?;
                rows.set_item(&sid, d)?;
            }
        }
        let list = PyList::new(py, at.iter().map(|&i| texts[i].take()))?;
        out.append((sid, list))?;
    }
    Ok(out)
}

/// Adds this file's functions to `cra._core`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(apply_session_rows, m)?)?;
    m.add_function(wrap_pyfunction!(new_session_row, m)?)?;
    Ok(())
}
