//! The core's sealed event, read-only from Python.

use std::sync::Arc;

use pyo3::prelude::*;

use crate::trace::event::TraceEvent;
use crate::trace::hash::{to_hex, HashAlgorithm, HashInput};

use super::errors::IntoPyResult;

#[pyclass(frozen, module = "cra._core", name = "Event")]
pub struct Event(pub Arc<TraceEvent>);

#[pymethods]
impl Event {
    #[getter]
    fn event_id(&self) -> String {
        self.0.event_id.to_string()
    }
    #[getter]
    fn trace_id(&self) -> String {
        self.0.trace_id.to_string()
    }
    #[getter]
    fn span_id(&self) -> String {
        self.0.span_id.to_string()
    }
    #[getter]
    fn parent_span_id(&self) -> Option<String> {
        self.0.parent_span_id.map(|u| u.to_string())
    }
    #[getter]
    fn session_id(&self) -> String {
        self.0.session_id.to_string()
    }
    #[getter]
    fn sequence(&self) -> u64 {
        self.0.sequence
    }
    #[getter]
    fn timestamp(&self) -> &str {
        self.0.timestamp.as_str()
    }
    #[getter]
    fn event_type(&self) -> &str {
        &self.0.event_type
    }
    /// The payload's canonical JSON text (exactly what was hashed).
    #[getter]
    fn payload_json(&self) -> &str {
        &self.0.payload
    }
    #[getter]
    fn event_hash(&self) -> String {
        to_hex(&self.0.event_hash)
    }
    #[getter]
    fn previous_event_hash(&self) -> String {
        to_hex(&self.0.previous_event_hash)
    }
    /// The event as one line of JSON (the `.trace.jsonl` form).
    fn to_json(&self) -> String {
        self.0.to_json()
    }
}

/// The TRACE/1.0 event hash of an event given as its fields (for tests and tools).
#[pyfunction]
#[pyo3(signature = (algorithm, trace_version, event_id, trace_id, span_id, parent_span_id, session_id, sequence, timestamp, event_type, canonical_payload, previous_event_hash))]
#[allow(clippy::too_many_arguments)]
pub fn event_hash(
    algorithm: &str,
    trace_version: &str,
    event_id: &str,
    trace_id: &str,
    span_id: &str,
    parent_span_id: Option<&str>,
    session_id: &str,
    sequence: u64,
    timestamp: &str,
    event_type: &str,
    canonical_payload: &str,
    previous_event_hash: &str,
) -> PyResult<String> {
    let alg = HashAlgorithm::parse(algorithm).py()?;
    let input = HashInput {
        trace_version,
        event_id,
        trace_id,
        span_id,
        parent_span_id,
        session_id,
        sequence,
        timestamp,
        event_type,
        canonical_payload,
        previous_event_hash,
    };
    Ok(to_hex(&input.hash(alg)))
}

/// A new lower-case UUIDv7 string.
#[pyfunction]
pub fn new_id() -> String {
    crate::ids::new_v7(crate::time::Clock::now_micros(&crate::time::SystemClock)).to_string()
}

/// The current time as RFC 3339 UTC with six fractional digits and `Z`.
#[pyfunction]
pub fn now_timestamp() -> String {
    crate::time::format_timestamp(crate::time::Clock::now_micros(&crate::time::SystemClock))
}
