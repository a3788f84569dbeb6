//! Replay, diff and state reconstruction for Python (JSON in, JSON out).

use pyo3::prelude::*;
use serde_json::json;

use crate::diff::diff;
use crate::reconstruct::reconstruct;
use crate::recorded::Recorded;
use crate::replay::replay;

use super::errors::IntoPyResult;
use super::runtime::Runtime;

fn parse(py: Python<'_>, lines: &[String]) -> PyResult<Vec<Recorded>> {
    py.detach(|| Recorded::parse_all(lines.iter().map(String::as_str)))
        .py()
}

/// Compares two traces (events as JSON texts); returns the diff as JSON text.
#[pyfunction]
pub fn diff_traces(py: Python<'_>, a: Vec<String>, b: Vec<String>) -> PyResult<String> {
    let (a, b) = (parse(py, &a)?, parse(py, &b)?);
    let d = py.detach(|| diff(&a, &b));
    let differences: Vec<_> = d
        .differences
        .iter()
        .map(|x| {
            json!({
                "path": x.path,
                "type": x.change.as_str(),
                "significance": if x.major { "major" } else { "minor" },
                "before": x.before,
                "after": x.after,
            })
        })
        .collect();
    Ok(json!({"compatibility": d.compatibility.as_str(), "differences": differences}).to_string())
}

/// Rebuilds every session's state from a trace; returns a JSON list.
#[pyfunction]
pub fn reconstruct_trace(py: Python<'_>, lines: Vec<String>) -> PyResult<String> {
    let events = parse(py, &lines)?;
    Ok(serde_json::Value::Array(py.detach(|| reconstruct(&events))).to_string())
}

#[pymethods]
impl Runtime {
    /// Replays a trace's resolves against this runtime's atlases; JSON report.
    fn replay_trace(&self, py: Python<'_>, lines: Vec<String>) -> PyResult<String> {
        let events = parse(py, &lines)?;
        let snapshot = self.0.snapshot();
        let report = py.detach(|| replay(&events, snapshot));
        let requests: Vec<_> = report
            .requests
            .iter()
            .map(|r| {
                json!({
                    "session_id": r.session_id, "request_id": r.request_id, "sequence": r.sequence,
                    "matches": r.matches, "mismatches": r.mismatches, "error": r.error,
                })
            })
            .collect();
        Ok(json!({
            "identical": report.identical(),
            "executions_counted": report.executions_counted,
            "requests": requests,
        })
        .to_string())
    }
}
