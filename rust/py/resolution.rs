//! `cra._core.Resolution`: a frozen handle on a core resolution.

use std::sync::Arc;

use pyo3::prelude::*;

use crate::carp::resolution::Resolution as CoreResolution;
use crate::carp::resolution_json::to_value;
use crate::time::format_timestamp;

#[pyclass(frozen, module = "cra._core", name = "Resolution")]
pub struct Resolution(pub Arc<CoreResolution>);

#[pymethods]
impl Resolution {
    #[getter]
    fn resolution_id(&self) -> String {
        self.0.resolution_id.to_string()
    }
    #[getter]
    fn request_id(&self) -> String {
        self.0.request_id.to_string()
    }
    #[getter]
    fn session_id(&self) -> String {
        self.0.session_id.to_string()
    }
    #[getter]
    fn trace_id(&self) -> String {
        self.0.trace_id.to_string()
    }
    #[getter]
    fn timestamp(&self) -> String {
        format_timestamp(self.0.timestamp)
    }
    #[getter]
    fn expires_at(&self) -> String {
        format_timestamp(self.0.expires_at)
    }
    #[getter]
    fn decision_type(&self) -> &'static str {
        self.0.decision.as_str()
    }
    #[getter]
    fn reason(&self) -> Option<&str> {
        self.0.reason.as_deref()
    }
    #[getter]
    fn approval_id(&self) -> Option<String> {
        self.0.approval_id.map(|a| a.to_string())
    }
    #[getter]
    fn ttl_seconds(&self) -> u32 {
        self.0.ttl_seconds
    }
    /// Ids of the allowed actions (including those needing approval), in order.
    fn allowed_action_ids(&self) -> Vec<String> {
        self.0
            .allowed()
            .map(|e| self.0.action(e).action_id.to_string())
            .collect()
    }
    /// Ids of the denied actions, in order.
    fn denied_action_ids(&self) -> Vec<String> {
        self.0
            .denied()
            .map(|e| self.0.action(e).action_id.to_string())
            .collect()
    }
    /// True if the action may be executed under this resolution (perhaps after approval).
    fn is_allowed(&self, action_id: &str) -> bool {
        self.0.is_allowed(action_id)
    }
    /// The resolution as the protocol's JSON text.
    fn to_json(&self) -> String {
        to_value(&self.0).to_string()
    }
}
