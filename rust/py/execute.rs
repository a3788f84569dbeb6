//! The execute answer, validate and approvals on `cra._core.Runtime`
//! (execute itself is in `execute_run.rs`).

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use serde_json::Value;

use crate::approvals::{GrantScope, Pending};
use crate::execute::ExecuteResponse as CoreResponse;
use crate::ids::parse_uuid;
use crate::time::format_timestamp;

use super::errors::IntoPyResult;
use super::runtime::{Detached, Runtime};
use super::value::to_value;

fn json_to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    py.import("json")?.call_method1("loads", (v.to_string(),))
}

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
    /// Validates a request (§6): `{"valid": bool, "errors": [{"path", "message"}]}`.
    fn validate<'py>(
        &self,
        py: Python<'py>,
        request: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let report = match to_value(request, "INVALID_REQUEST") {
            Ok(v) => self.0.validate_value(&v, &Detached(py)),
            Err(e) => crate::carp_validate::ValidationReport {
                valid: false,
                errors: vec![crate::error::Fault::new(
                    e.path().unwrap_or_default(),
                    e.message(),
                )],
            },
        };
        let d = PyDict::new(py);
        d.set_item("valid", report.valid)?;
        let errors = PyList::empty(py);
        for f in &report.errors {
            let e = PyDict::new(py);
            e.set_item("path", &f.path)?;
            e.set_item("message", &f.message)?;
            errors.append(e)?;
        }
        d.set_item("errors", errors)?;
        Ok(d)
    }

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
        let d = self
            .0
            .approve(
                &id,
                approver,
                note,
                action_id,
                parameters_hash,
                scope,
                &Detached(py),
            )
            .py()?;
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
        let d = self.0.reject(&id, approver, note, &Detached(py)).py()?;
        decision_dict(py, &d)
    }

    /// Executions waiting for a human, oldest first.
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
        self.0
            .pending_approvals(id.as_ref())
            .iter()
            .map(|p| pending_dict(py, p))
            .collect()
    }
}

fn decision_dict<'py>(
    py: Python<'py>,
    d: &crate::approvals::Decision,
) -> PyResult<Bound<'py, PyDict>> {
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
    let _ = json_to_py;
    Ok(out)
}
