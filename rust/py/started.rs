//! Execute split around the executor, for callers on an event loop: the
//! checks answer a `Started` (the executor and its ticket), the caller
//! calls the executor and awaits it on its own loop, and the outcome is
//! recorded after. `Front.begin`/`finish`/`fail` do this for a request;
//! `Governed` for a session's calls.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::carp::execute::RunResult;
use crate::runtime::execute_answer::{Begin, Ticket};
use crate::runtime::state::Direct;

use super::errors::IntoPyResult;
use super::execute::{failed, find, parse_execute, session_registry, ExecuteResponse, Registries};
use super::front::Front;
use super::runtime::{durable, Runtime};

/// A checked execution whose executor the caller runs.
#[pyclass(frozen, module = "cra._core", name = "Started")]
pub struct Started {
    runtime: Py<Runtime>,
    ticket: Mutex<Option<Ticket>>,
    /// The executor to call with the parameters.
    #[pyo3(get)]
    executor: Py<PyAny>,
    started: Instant,
}

impl Started {
    pub(super) fn new(runtime: Py<Runtime>, t: Ticket, executor: Py<PyAny>) -> Started {
        Started {
            runtime,
            ticket: Mutex::new(Some(t)),
            executor,
            started: Instant::now(),
        }
    }

    /// The ticket and the milliseconds since the checks; an error once
    /// the outcome is recorded.
    pub(super) fn take(&self) -> PyResult<(Ticket, f64)> {
        let t = self
            .ticket
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or_else(|| {
                PyRuntimeError::new_err("this execution's outcome is recorded already")
            })?;
        Ok((t, self.started.elapsed().as_secs_f64() * 1000.0))
    }
}

/// What a checked ticket comes to before its executor runs: the ticket
/// with its executor, or (no executor, or the lookup raised) the answer,
/// recorded.
pub(super) type Starting = Result<(Ticket, Py<PyAny>), ExecuteResponse>;

/// Finds a ticket's executor (see [`Starting`]).
pub(super) fn start(
    runtime: &Runtime,
    py: Python<'_>,
    t: Ticket,
    reg: &Registries<'_, '_>,
    action_id: Option<&Bound<'_, PyAny>>,
) -> PyResult<Starting> {
    let outcome = match find(reg, &t, action_id) {
        Ok(Some(f)) => return Ok(Ok((t, f.unbind()))),
        Ok(None) => RunResult::NoExecutor,
        Err(e) => failed(py, &e),
    };
    runtime.record_outcome(py, t, outcome, 0.0).map(Err)
}

impl Drop for Started {
    /// A ticket nobody finished is recorded as a failed execution, so the
    /// trace never has a started execution without an outcome.
    fn drop(&mut self) {
        let t = self
            .ticket
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(t) = t {
            let rt = Arc::clone(&self.runtime.get().0);
            let outcome = RunResult::abandoned();
            let ms = self.started.elapsed().as_secs_f64() * 1000.0;
            let _ = rt.execute_finish(t, outcome, ms, &Direct);
        }
    }
}

#[pymethods]
impl Front {
    /// The checks of an execute request: the answer when nothing is to
    /// run (denied, pending approval, no executor, ...), else a `Started`
    /// whose executor the caller calls with the request's parameters.
    fn begin<'py>(
        &self,
        py: Python<'py>,
        request: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let runtime = self.runtime().get();
        let begun = durable(&runtime.0, py, || {
            let t = match parse_execute(&runtime.0, py, request).py()? {
                Begin::Answer(resp) => return Ok(Err(ExecuteResponse(resp))),
                Begin::Run(t) => *t,
            };
            let reg = Registries {
                session: session_registry(Some(self.sessions(py)), &t)?,
                runtime: self.executors(py),
                settle: self.settle(py),
            };
            start(runtime, py, t, &reg, None)
        })?;
        match begun {
            Ok((t, executor)) => {
                let started = Started::new(self.runtime().clone_ref(py), t, executor);
                Ok(Bound::new(py, started)?.into_any())
            }
            Err(resp) => self.answered(py, resp),
        }
    }

    /// Records what a started execution's executor returned; the answer.
    fn finish<'py>(
        &self,
        py: Python<'py>,
        started: &Started,
        value: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.record_started(py, started, Ok(value))
    }

    /// Records the exception a started execution's executor raised; the
    /// answer (an exception that is not an `Exception` is raised on
    /// after it is recorded).
    fn fail<'py>(
        &self,
        py: Python<'py>,
        started: &Started,
        error: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.record_started(py, started, Err(PyErr::from_value(error)))
    }
}

impl Front {
    fn record_started<'py>(
        &self,
        py: Python<'py>,
        started: &Started,
        called: PyResult<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (t, ms) = started.take()?;
        let runtime = self.runtime().get();
        let (resp, _) = durable(&runtime.0, py, || runtime.record_called(py, t, called, ms))?;
        self.answered(py, resp)
    }
}
