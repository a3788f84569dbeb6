//! Execute on `cra._core.Runtime`: the checks of §5, the executor call
//! and the record of its outcome in one call from Python, and the
//! `cra._core.ExecuteResponse` it answers with. The executor is a Python
//! callable found in the Python layer's registry (a dict by action id or
//! executor name) and called as `fn(**parameters)`.

use std::sync::Arc;
use std::time::Instant;

use pyo3::exceptions::PyException;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString};
use serde_json::{json, Value};

use crate::carp::execute::{ExecuteResponse as CoreResponse, RunResult};
use crate::runtime::execute_answer::{Begin, Ticket};
use crate::runtime::state::Runtime as CoreRuntime;
use crate::time::format_timestamp;

use super::carp::session_hint_py;
use super::convert::value_to_canonical;
use super::errors::IntoPyResult;
use super::request_view::parse_direct;
use super::runtime::{Detached, Runtime};
use super::value::to_value;

#[pyclass(frozen, module = "cra._core", name = "ExecuteResponse")]
pub struct ExecuteResponse(pub Arc<CoreResponse>);

#[pymethods]
impl ExecuteResponse {
    #[getter]
    fn status(&self) -> &'static str {
        self.0.status.as_str()
    }
    #[getter]
    fn execution_id(&self) -> String {
        self.0.execution_id.to_string()
    }
    #[getter]
    fn request_id(&self) -> String {
        self.0.request_id.to_string()
    }
    #[getter]
    fn resolution_id(&self) -> String {
        self.0.resolution_id.to_string()
    }
    #[getter]
    fn timestamp(&self) -> String {
        format_timestamp(self.0.timestamp)
    }
    #[getter]
    fn trace_id(&self) -> String {
        self.0.trace_id.to_string()
    }
    /// The executor's result as canonical JSON text (None unless success).
    #[getter]
    fn result_json(&self) -> Option<&str> {
        self.0.result.as_deref()
    }
    #[getter]
    fn error_code(&self) -> Option<&'static str> {
        self.0.error.as_ref().map(|e| e.code)
    }
    #[getter]
    fn error_message(&self) -> Option<&str> {
        self.0.error.as_ref().map(|e| e.message.as_str())
    }
    /// The error's details as JSON text.
    #[getter]
    fn error_details_json(&self) -> Option<String> {
        self.0.error.as_ref().map(|e| e.details.to_string())
    }
    #[getter]
    fn retry_after(&self) -> Option<f64> {
        self.0.retry_after()
    }
    fn to_json(&self) -> String {
        self.0.to_value().to_string()
    }
}

/// Where a ticket's executor is looked up: the session's own registry
/// first (executors registered through its governed tools), then the
/// runtime's. Each is a dict by action id or atlas executor name.
pub(super) struct Registries<'a, 'py> {
    pub session: Option<Bound<'py, PyDict>>,
    pub runtime: &'a Bound<'py, PyDict>,
    /// Awaits what an executor returned when it is awaitable.
    pub settle: &'a Bound<'py, PyAny>,
}

/// The session's registry in `sessions` (a dict by session id), if any.
pub(super) fn session_registry<'py>(
    sessions: Option<&Bound<'py, PyDict>>,
    t: &Ticket,
) -> PyResult<Option<Bound<'py, PyDict>>> {
    let Some(sessions) = sessions.filter(|d| !d.is_empty()) else {
        return Ok(None);
    };
    let key = t.session.session_id.to_string();
    Ok(sessions
        .get_item(key)?
        .and_then(|d| d.cast_into::<PyDict>().ok()))
}

/// The executor of a ticket in one registry: by action id, else by the
/// atlas's executor name. `action_id` is the request's own action id
/// object, when it is a plain `str` (a key the registry finds without a
/// new string).
fn find_in<'py>(
    executors: &Bound<'py, PyDict>,
    t: &Ticket,
    action_id: Option<&Bound<'py, PyAny>>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let by_action = match action_id {
        Some(key) => executors.get_item(key)?,
        None => executors.get_item(&*t.echo.action_id)?,
    };
    if by_action.is_some() {
        return Ok(by_action);
    }
    match &t.executor {
        Some(name) => executors.get_item(&**name),
        None => Ok(None),
    }
}

/// The executor of a ticket: the session's, else the runtime's.
pub(super) fn find<'py>(
    reg: &Registries<'_, 'py>,
    t: &Ticket,
    action_id: Option<&Bound<'py, PyAny>>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    if let Some(own) = &reg.session {
        if let Some(f) = find_in(own, t, action_id)? {
            return Ok(Some(f));
        }
    }
    find_in(reg.runtime, t, action_id)
}

/// The request's own `execution` dict (of a dict request that passed the
/// checks).
fn request_execution<'py>(request: &Bound<'py, PyAny>) -> Option<Bound<'py, PyDict>> {
    let py = request.py();
    request
        .cast::<PyDict>()
        .ok()?
        .get_item(intern!(py, "execution"))
        .ok()??
        .cast_into::<PyDict>()
        .ok()
}

/// The request's action id object, when it is a plain `str`.
fn request_action_id<'py>(execution: &Bound<'py, PyDict>) -> Option<Bound<'py, PyAny>> {
    let id = execution
        .get_item(intern!(execution.py(), "action_id"))
        .ok()??;
    id.is_exact_instance_of::<PyString>().then_some(id)
}

/// The request's own parameters dict, or `None` when they must be rebuilt
/// from the checked JSON.
fn request_parameters<'py>(execution: &Bound<'py, PyDict>) -> Option<Bound<'py, PyDict>> {
    let py = execution.py();
    match execution.get_item(intern!(py, "parameters")).ok()? {
        None => Some(PyDict::new(py)),
        Some(p) if p.is_none() => Some(PyDict::new(py)),
        Some(p) => p.cast_into::<PyDict>().ok(),
    }
}

/// The checked parameters as a new dict, from their JSON.
pub(super) fn parameters_from_json<'py>(
    py: Python<'py>,
    v: &Value,
) -> PyResult<Bound<'py, PyDict>> {
    let loaded = py
        .import(intern!(py, "json"))?
        .call_method1(intern!(py, "loads"), (v.to_string(),))?;
    Ok(loaded.cast_into::<PyDict>()?)
}

/// Plain JSON values are never awaitable; anything else goes through the
/// Python layer's `settle`, which awaits an awaitable and returns the rest.
fn settled<'py>(
    value: Bound<'py, PyAny>,
    settle: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let plain = value.is_none()
        || value.is_instance_of::<PyDict>()
        || value.is_instance_of::<PyString>()
        || value.is_instance_of::<PyList>()
        || value.is_instance_of::<PyBool>()
        || value.is_instance_of::<PyInt>()
        || value.is_instance_of::<PyFloat>();
    if plain {
        Ok(value)
    } else {
        settle.call1((value,))
    }
}

pub(super) fn returned(result: &Bound<'_, PyAny>) -> RunResult {
    match value_to_canonical(result) {
        Ok(text) => RunResult::Returned(text),
        Err(e) => RunResult::Failed {
            code: "INVALID_RESULT",
            message: format!("the executor's result is not JSON: {}", e.message()),
            details: json!({"path": e.path()}),
        },
    }
}

/// The exception's class name (`type(e).__name__`).
pub(super) fn class_name(py: Python<'_>, err: &PyErr) -> String {
    err.get_type(py)
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "Exception".into())
}

pub(super) fn failed(py: Python<'_>, err: &PyErr) -> RunResult {
    let name = class_name(py, err);
    let text = err
        .value(py)
        .str()
        .map(|s| s.to_string())
        .unwrap_or_default();
    RunResult::Failed {
        code: "EXECUTION_FAILED",
        message: if text.is_empty() { name.clone() } else { text },
        details: json!({ "exception": name }),
    }
}

impl Runtime {
    pub(super) fn record_outcome(
        &self,
        py: Python<'_>,
        t: Ticket,
        outcome: RunResult,
        ms: f64,
    ) -> PyResult<ExecuteResponse> {
        self.0
            .execute_finish(t, outcome, ms, &Detached(py))
            .map(ExecuteResponse)
            .py()
    }

    /// Runs a ticket's executor with `kwargs` (the request's parameters,
    /// or `None` to rebuild them from the checked JSON) and records the
    /// outcome. The answer comes with what the executor returned, when
    /// it succeeded.
    pub(super) fn run_ticket<'py>(
        &self,
        py: Python<'py>,
        t: Ticket,
        reg: &Registries<'_, 'py>,
        action_id: Option<&Bound<'py, PyAny>>,
        kwargs: Option<Bound<'py, PyDict>>,
    ) -> PyResult<(ExecuteResponse, Option<Bound<'py, PyAny>>)> {
        let executor = match find(reg, &t, action_id) {
            Ok(Some(f)) => f,
            Ok(None) => {
                return Ok((
                    self.record_outcome(py, t, RunResult::NoExecutor, 0.0)?,
                    None,
                ))
            }
            Err(e) => {
                let outcome = failed(py, &e);
                return Ok((self.record_outcome(py, t, outcome, 0.0)?, None));
            }
        };
        let kwargs = match kwargs {
            Some(d) => d,
            None => match parameters_from_json(py, &t.parameters) {
                Ok(d) => d,
                Err(e) => {
                    let outcome = failed(py, &e);
                    return Ok((self.record_outcome(py, t, outcome, 0.0)?, None));
                }
            },
        };
        let started = Instant::now();
        let called = executor
            .call((), Some(&kwargs))
            .and_then(|r| settled(r, reg.settle));
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        self.record_called(py, t, called, ms)
    }

    /// Records what an executor call came to: its result, or its
    /// exception. KeyboardInterrupt, SystemExit, ... are recorded, then
    /// raised on.
    pub(super) fn record_called<'py>(
        &self,
        py: Python<'py>,
        t: Ticket,
        called: PyResult<Bound<'py, PyAny>>,
        ms: f64,
    ) -> PyResult<(ExecuteResponse, Option<Bound<'py, PyAny>>)> {
        match called {
            Ok(result) => {
                let outcome = returned(&result);
                let ok = matches!(outcome, RunResult::Returned(_));
                let resp = self.record_outcome(py, t, outcome, ms)?;
                Ok((resp, ok.then_some(result)))
            }
            Err(err) if err.is_instance_of::<PyException>(py) => {
                let outcome = failed(py, &err);
                Ok((self.record_outcome(py, t, outcome, ms)?, None))
            }
            Err(err) => {
                let outcome = RunResult::Failed {
                    code: "EXECUTION_FAILED",
                    message: format!("interrupted: {}", class_name(py, &err)),
                    details: Value::Object(Default::default()),
                };
                self.record_outcome(py, t, outcome, ms)?;
                Err(err)
            }
        }
    }
}

/// The checks of an execute request (a dict read directly, else through
/// JSON), and whether it was read directly.
fn begin_request(
    rt: &CoreRuntime,
    py: Python<'_>,
    request: &Bound<'_, PyAny>,
) -> (crate::error::Result<Begin>, bool) {
    let wait = Detached(py);
    match parse_direct(request) {
        Some(req) => (rt.execute_parsed(req, &wait), true),
        None => match to_value(request, "INVALID_REQUEST") {
            Ok(v) => (rt.execute_begin(&v, &wait), false),
            // Not JSON at all: still an `error.occurred` in an open session.
            Err(e) => {
                let hint = session_hint_py(request);
                (rt.with_error_event(hint, &wait, || Err(e)), false)
            }
        },
    }
}

/// The checks of an execute request (see `begin_request`).
pub(super) fn parse_execute(
    rt: &CoreRuntime,
    py: Python<'_>,
    request: &Bound<'_, PyAny>,
) -> crate::error::Result<Begin> {
    begin_request(rt, py, request).0
}

#[pymethods]
impl Runtime {
    /// Executes a request: an answer without running anything (denied,
    /// pending approval, rate-limited, ...), or the executor's outcome.
    /// `sessions` maps a session id to that session's own executors,
    /// looked up before `executors`; `settle(value)` awaits what an
    /// executor returned if it is awaitable.
    #[pyo3(signature = (request, executors, settle, sessions=None))]
    pub(super) fn execute(
        &self,
        py: Python<'_>,
        request: &Bound<'_, PyAny>,
        executors: &Bound<'_, PyDict>,
        settle: &Bound<'_, PyAny>,
        sessions: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<ExecuteResponse> {
        self.durable(py, || {
            self.execute_now(py, request, executors, settle, sessions)
        })
    }
}

impl Runtime {
    /// `execute` without the durability wait.
    fn execute_now(
        &self,
        py: Python<'_>,
        request: &Bound<'_, PyAny>,
        executors: &Bound<'_, PyDict>,
        settle: &Bound<'_, PyAny>,
        sessions: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<ExecuteResponse> {
        let (begun, is_direct) = begin_request(&self.0, py, request);
        let t = match begun.py()? {
            Begin::Answer(resp) => return Ok(ExecuteResponse(resp)),
            Begin::Run(t) => *t,
        };
        let execution = is_direct.then(|| request_execution(request)).flatten();
        let action_id = execution.as_ref().and_then(request_action_id);
        let kwargs = execution.as_ref().and_then(request_parameters);
        let reg = Registries {
            session: session_registry(sessions, &t)?,
            runtime: executors,
            settle,
        };
        let (resp, _) = self.run_ticket(py, t, &reg, action_id.as_ref(), kwargs)?;
        Ok(resp)
    }
}
