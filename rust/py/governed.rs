//! `cra._core.Governed`: one session's governed calls, from the Python
//! layer's `GovernedTools`. A call builds its execute request here (no
//! request dict, no Python frame), keeps the session's resolution until it
//! expires or lacks the action, runs the session's own executor (else the
//! runtime's), and hands a refusal to the layer to raise or settle.
//!
//! For callers on an event loop a call is split in three: `begin` does the
//! checks and answers a `Started` (the executor and its ticket), the layer
//! calls the executor and awaits it on its own loop, and `finish` (or
//! `fail`) records the outcome.

use std::sync::{Arc, Mutex, PoisonError};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::carp::request::{CarpRequest, Execution, Operation};
use crate::carp::resolution::Resolution as CoreResolution;
use crate::ids::new_v7;
use crate::runtime::execute_answer::Begin;
use crate::runtime::session::Session;

use super::errors::IntoPyResult;
use super::execute::{ExecuteResponse, Registries};
use super::front::Front;
use super::resolution::Resolution;
use super::runtime::{durable, Detached, Runtime};
use super::started::{start, Started};
use super::value::to_value_at;

/// How deep the parameters sit in an execute request (for the depth limit).
const PARAMETERS_DEPTH: usize = 2;

#[pyclass(frozen, module = "cra._core", name = "Governed")]
pub struct Governed {
    front: Py<Front>,
    session: Arc<Session>,
    agent_id: Arc<str>,
    goal: Arc<str>,
    risk_tier: Option<String>,
    atlas_ids: Option<Vec<String>>,
    /// The session's own executors, by action id or executor name.
    own: Py<PyDict>,
    /// `refused(response, action_id, parameters, wait)`: raises the typed
    /// refusal, or settles an approval and answers the call's result.
    refused: Py<PyAny>,
    resolution: Mutex<Option<Arc<CoreResolution>>>,
}

impl Governed {
    fn rt<'a>(&'a self, py: Python<'a>) -> &'a Runtime {
        self.front.bind(py).get().runtime().get()
    }

    /// The session's resolution when it is live and names `action_id`
    /// (or no action is asked about); else a fresh one.
    fn current(&self, py: Python<'_>, action_id: Option<&str>) -> PyResult<Arc<CoreResolution>> {
        let rt = &self.rt(py).0;
        let held = self
            .resolution
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(res) = held {
            let live = res.expires_at > rt.now();
            if live && action_id.is_none_or(|a| res.is_allowed(a)) {
                return Ok(res);
            }
        }
        self.resolve_now(py)
    }

    fn resolve_now(&self, py: Python<'_>) -> PyResult<Arc<CoreResolution>> {
        let rt = &self.rt(py).0;
        let now = rt.now();
        let req = CarpRequest::for_resolve(
            new_v7(now),
            now,
            self.session.session_id,
            &self.agent_id,
            &self.goal,
            self.risk_tier.as_deref(),
            self.atlas_ids.clone(),
            None,
            None,
        )
        .py()?;
        let res = durable(rt, py, || rt.resolve_request(&req, &Detached(py)).py())?;
        *self
            .resolution
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&res));
        Ok(res)
    }

    /// The checks of an execute of `action_id` with `parameters`.
    fn begin_call(
        &self,
        py: Python<'_>,
        action_id: &Bound<'_, PyString>,
        parameters: &Bound<'_, PyDict>,
    ) -> PyResult<Begin> {
        let rt = &self.rt(py).0;
        let id = action_id.to_cow()?;
        let id: &str = &id;
        let res = self.current(py, Some(id))?;
        let wait = Detached(py);
        let now = rt.now();
        let session_id = self.session.session_id;
        let params = match to_value_at(parameters, "INVALID_REQUEST", PARAMETERS_DEPTH) {
            Ok(v) => v,
            Err(e) => return rt.with_error_event(Some(session_id), &wait, || Err(e)).py(),
        };
        let req = CarpRequest {
            request_id: new_v7(now),
            timestamp: now,
            operation: Operation::Execute,
            agent_id: Arc::clone(&self.agent_id),
            session_id,
            parent_session_id: None,
            goal: Arc::clone(&self.goal),
            risk_tier: None,
            context_hints: None,
            required_capabilities: None,
            atlas_ids: None,
            context: None,
            execution: Some(Execution {
                resolution_id: res.resolution_id,
                action_id: id.to_owned(),
                parameters: params,
                idempotency_key: None,
            }),
        };
        rt.execute_parsed(req, &wait).py()
    }

    fn registries<'a, 'py>(&'a self, py: Python<'py>) -> Registries<'a, 'py>
    where
        'py: 'a,
    {
        let front = self.front.bind(py).get();
        Registries {
            session: Some(self.own.bind(py).clone()),
            runtime: front.executors(py),
            settle: front.settle(py),
        }
    }

    /// The layer's answer to a refusal or failure (it raises, or settles
    /// an approval and answers the call's result).
    fn refuse<'py>(
        &self,
        py: Python<'py>,
        resp: ExecuteResponse,
        action_id: &Bound<'py, PyString>,
        parameters: &Bound<'py, PyDict>,
        wait: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let resp = self.front.bind(py).get().answered(py, resp)?;
        self.refused
            .bind(py)
            .call1((resp, action_id, parameters, wait))
    }
}

#[pymethods]
impl Governed {
    #[new]
    #[pyo3(signature = (front, session_id, goal, own, refused, risk_tier=None, atlas_ids=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        front: Py<Front>,
        session_id: &str,
        goal: &str,
        own: Py<PyDict>,
        refused: Py<PyAny>,
        risk_tier: Option<String>,
        atlas_ids: Option<Vec<String>>,
    ) -> PyResult<Self> {
        let session = {
            let rt = &front.bind(py).get().runtime().get().0;
            let id = crate::ids::parse_uuid(session_id, "/session_id").py()?;
            rt.session(&id).py()?
        };
        let agent_id: Arc<str> = Arc::from(session.agent_id.as_str());
        Ok(Governed {
            front,
            session,
            agent_id,
            goal: Arc::from(goal),
            risk_tier,
            atlas_ids,
            own,
            refused,
            resolution: Mutex::new(None),
        })
    }

    /// The session's id in canonical form.
    #[getter]
    fn session_id(&self) -> String {
        self.session.session_id.to_string()
    }

    #[getter]
    fn agent_id(&self) -> &str {
        &self.agent_id
    }

    /// The session's live resolution (resolved now if there is none).
    fn resolution<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let res = self.current(py, None)?;
        self.front.bind(py).get().resolution(py, Resolution(res))
    }

    /// A fresh resolution for the session's goal.
    fn resolve<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let res = self.resolve_now(py)?;
        self.front.bind(py).get().resolution(py, Resolution(res))
    }

    /// Executes `action_id` with `parameters` through the runtime and
    /// answers what the executor returned; a refusal goes to `refused`.
    /// `wait_for_approval` (seconds) is taken out of the parameters.
    #[pyo3(signature = (action_id, /, **parameters))]
    fn call<'py>(
        &self,
        py: Python<'py>,
        action_id: &Bound<'py, PyString>,
        parameters: Option<Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let parameters = parameters.unwrap_or_else(|| PyDict::new(py));
        let key = pyo3::intern!(py, "wait_for_approval");
        let wait = parameters.get_item(key)?;
        if wait.is_some() {
            parameters.del_item(key)?;
        }
        self.run(py, action_id, parameters, wait)
    }

    /// `call` with the parameters as a dict (every name is a parameter;
    /// none is reserved) and the wait for approval as its own argument.
    #[pyo3(signature = (action_id, parameters, wait_for_approval=None))]
    fn invoke<'py>(
        &self,
        py: Python<'py>,
        action_id: &Bound<'py, PyString>,
        parameters: &Bound<'py, PyDict>,
        wait_for_approval: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run(py, action_id, parameters.copy()?, wait_for_approval)
    }

    /// The checks of a call whose executor the caller runs: a `Started`,
    /// or the answer when nothing is to run (refused, no executor).
    fn begin<'py>(
        &self,
        py: Python<'py>,
        action_id: &Bound<'py, PyString>,
        parameters: &Bound<'py, PyDict>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let runtime = self.rt(py);
        let begun = durable(&runtime.0, py, || {
            let t = match self.begin_call(py, action_id, parameters)? {
                Begin::Answer(resp) => return Ok(Err(ExecuteResponse(resp))),
                Begin::Run(t) => *t,
            };
            let reg = self.registries(py);
            start(runtime, py, t, &reg, Some(action_id.as_any()))
        })?;
        match begun {
            Ok((t, executor)) => {
                let runtime = self.front.bind(py).get().runtime().clone_ref(py);
                Ok(Bound::new(py, Started::new(runtime, t, executor))?.into_any())
            }
            Err(resp) => self.front.bind(py).get().answered(py, resp),
        }
    }

    /// Records what a started call's executor returned: `(True, value)`,
    /// or `(False, answer)` when the result is unusable.
    fn finish<'py>(
        &self,
        py: Python<'py>,
        started: &Started,
        value: Bound<'py, PyAny>,
    ) -> PyResult<(bool, Bound<'py, PyAny>)> {
        self.settle_started(py, started, Ok(value))
    }

    /// Records the exception a started call's executor raised:
    /// `(False, answer)` (an exception that is not an `Exception` is
    /// raised on after it is recorded).
    fn fail<'py>(
        &self,
        py: Python<'py>,
        started: &Started,
        error: Bound<'py, PyAny>,
    ) -> PyResult<(bool, Bound<'py, PyAny>)> {
        self.settle_started(py, started, Err(PyErr::from_value(error)))
    }
}

impl Governed {
    fn run<'py>(
        &self,
        py: Python<'py>,
        action_id: &Bound<'py, PyString>,
        parameters: Bound<'py, PyDict>,
        wait: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let runtime = self.rt(py);
        let (resp, result) = durable(&runtime.0, py, || {
            match self.begin_call(py, action_id, &parameters)? {
                Begin::Answer(resp) => Ok((ExecuteResponse(resp), None)),
                Begin::Run(t) => {
                    let reg = self.registries(py);
                    runtime.run_ticket(
                        py,
                        *t,
                        &reg,
                        Some(action_id.as_any()),
                        Some(parameters.clone()),
                    )
                }
            }
        })?;
        match result {
            Some(value) => Ok(value),
            None => self.refuse(py, resp, action_id, &parameters, wait),
        }
    }

    fn settle_started<'py>(
        &self,
        py: Python<'py>,
        started: &Started,
        called: PyResult<Bound<'py, PyAny>>,
    ) -> PyResult<(bool, Bound<'py, PyAny>)> {
        let (t, ms) = started.take()?;
        let runtime = self.rt(py);
        let (resp, result) = durable(&runtime.0, py, || runtime.record_called(py, t, called, ms))?;
        match result {
            Some(value) => Ok((true, value)),
            None => Ok((false, self.front.bind(py).get().answered(py, resp)?)),
        }
    }
}
