//! Approvals on `cra._core.Runtime`: granting, rejecting, and the
//! executions waiting for a human, as dicts.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::carp::approvals::{Decision, GrantScope, Pending};
use crate::ids::parse_uuid;
use crate::time::format_timestamp;

use super::errors::IntoPyResult;
use super::runtime::{Detached, Runtime};

fn pending_dict<'py>(py: Python<'py>, p: &Pending) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("approval_id", p.approval_id.to_string())?;
    d.set_item("session_id", p.session_id.to_string())?;
    d.set_item("resolution_id", p.resolution_id.to_string())?;
    d.set_item("action_id", &*p.action_id)?;
    d.set_item("parameters_hash", &p.parameters_hash)?;
    d.set_item(
        "parameters",
        py.import("json")?
            .call_method1("loads", (&*p.parameters,))?,
    )?;
    d.set_item("requested_at", format_timestamp(p.requested_at))?;
    Ok(d)
}

#[pymethods]
impl Runtime {
    /// Grants an approval; returns the decision as recorded.
    #[pyo3(signature = (approval_id, approver, note=None, action_id=None, parameters_hash=None, scope="once"))]
    #[allow(clippy::too_many_arguments)]
    fn approve<'py>(
        &self,
        py: Python<'py>,
        approval_id: &str,
        approver: &str,
        note: Option<&str>,
        action_id: Option<&str>,
        parameters_hash: Option<&str>,
        scope: &str,
    ) -> PyResult<Bound<'py, PyDict>> {
        let id = parse_uuid(approval_id, "/approval_id").py()?;
        let scope = GrantScope::parse(scope).py()?;
        let d = self.durable(py, || {
            self.0
                .approve(
                    &id,
                    approver,
                    note,
                    action_id,
                    parameters_hash,
                    scope,
                    &Detached(py),
                )
                .py()
        })?;
        decision_dict(py, &d)
    }

    /// Rejects an approval; the actions it gates are denied from now on.
    #[pyo3(signature = (approval_id, approver, note=None))]
    fn reject<'py>(
        &self,
        py: Python<'py>,
        approval_id: &str,
        approver: &str,
        note: Option<&str>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let id = parse_uuid(approval_id, "/approval_id").py()?;
        let d = self.durable(py, || {
            self.0.reject(&id, approver, note, &Detached(py)).py()
        })?;
        decision_dict(py, &d)
    }

    /// Executions waiting for a human, oldest first.
    /// Where the execution of `action_id` with `parameters_hash` waiting
    /// on `approval_id` stands: granted, rejected, expired or waiting.
    fn approval_state(
        &self,
        approval_id: &str,
        action_id: &str,
        parameters_hash: &str,
    ) -> PyResult<&'static str> {
        let id = parse_uuid(approval_id, "/approval_id").py()?;
        Ok(self.0.approval_state(&id, action_id, parameters_hash))
    }

    #[pyo3(signature = (session_id=None))]
    fn pending_approvals<'py>(
        &self,
        py: Python<'py>,
        session_id: Option<&str>,
    ) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let id = session_id
            .map(|s| parse_uuid(s, "/session_id"))
            .transpose()
            .py()?;
        let pending = py.detach(|| self.0.pending_approvals(id.as_ref())).py()?;
        pending.iter().map(|p| pending_dict(py, p)).collect()
    }
}

fn decision_dict<'py>(py: Python<'py>, d: &Decision) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    out.set_item("approval_id", d.approval_id.to_string())?;
    out.set_item("session_id", d.session_id.to_string())?;
    out.set_item("resolution_id", d.resolution_id.to_string())?;
    out.set_item("action_id", d.action_id.as_deref())?;
    out.set_item("parameters_hash", d.parameters_hash.as_deref())?;
    out.set_item("scope", d.scope.as_str())?;
    out.set_item("approver", &d.approver)?;
    out.set_item("note", d.note.as_deref())?;
    out.set_item("granted", d.granted)?;
    Ok(out)
}
