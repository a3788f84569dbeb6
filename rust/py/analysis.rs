//! Replay, diff and state reconstruction for Python (JSON in, JSON out).
//! A trace is either a list of JSON texts or the path of a `.trace.jsonl`
//! file; a file is read line by line with the GIL released, each event
//! parsed once, and never held whole.

use std::path::PathBuf;

use pyo3::prelude::*;
use serde_json::{json, Value};

use crate::audit::diff::{diff_streams, TraceDiff};
use crate::audit::reconstruct::{reconstruct_file, Reconstructor};
use crate::audit::replay::{replay_file, ReplayStats, ReplayedRequest, Replayer};
use crate::audit::trace_reader::{Recorded, TraceReader};
use crate::error::Result;

use super::errors::IntoPyResult;
use super::runtime::Runtime;

/// A trace as Python gives it: event JSON texts, or a file path.
#[derive(FromPyObject)]
pub enum TraceSource {
    Lines(Vec<String>),
    Path(PathBuf),
}

type Events<'a> = Box<dyn Iterator<Item = Result<Recorded>> + Send + 'a>;

impl TraceSource {
    /// The events one at a time; `keep_raw` keeps each whole event (diff).
    fn events(&self, keep_raw: bool) -> Result<Events<'_>> {
        Ok(match self {
            TraceSource::Lines(lines) => Box::new(
                lines
                    .iter()
                    .enumerate()
                    .map(move |(i, t)| Recorded::parse(t.as_bytes(), i, keep_raw)),
            ),
            TraceSource::Path(path) => Box::new(TraceReader::open(path, keep_raw)?),
        })
    }
}

fn diff_json(d: &TraceDiff) -> String {
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
    json!({"compatibility": d.compatibility.as_str(), "differences": differences}).to_string()
}

/// Compares two traces (JSON texts or file paths, walked in step); the diff as JSON text.
#[pyfunction]
pub fn diff_traces(py: Python<'_>, a: TraceSource, b: TraceSource) -> PyResult<String> {
    py.detach(|| diff_streams(a.events(true)?, b.events(true)?).map(|d| diff_json(&d)))
        .py()
}

/// Rebuilds every session's state from a trace (JSON texts or a file path); a JSON list.
#[pyfunction]
pub fn reconstruct_trace(py: Python<'_>, trace: TraceSource) -> PyResult<String> {
    py.detach(|| {
        let states = match &trace {
            TraceSource::Path(path) => reconstruct_file(path)?,
            TraceSource::Lines(_) => {
                let mut r = Reconstructor::default();
                for e in trace.events(false)? {
                    r.push(&e?);
                }
                r.finish()
            }
        };
        Ok(Value::Array(states).to_string())
    })
    .py()
}

fn request_json(r: &ReplayedRequest) -> Value {
    json!({
        "session_id": r.session_id, "request_id": r.request_id, "sequence": r.sequence,
        "matches": r.matches, "mismatches": r.mismatches, "error": r.error,
    })
}

fn report_json(requests: Vec<Value>, stats: &ReplayStats) -> String {
    json!({
        "identical": stats.matched == stats.requests,
        "executions_counted": stats.executions_counted,
        "request_count": stats.requests,
        "requests": requests,
        "stats": {
            "events": stats.events,
            "peak_events_held": stats.peak_events_held,
            "peak_open_executes": stats.peak_open_executes,
        },
    })
    .to_string()
}

#[pymethods]
impl Runtime {
    /// Replays a trace given as JSON texts against this runtime's atlases; JSON report.
    fn replay_trace(&self, py: Python<'_>, lines: Vec<String>) -> PyResult<String> {
        let snapshot = self.0.snapshot();
        py.detach(|| {
            let events = Recorded::parse_all(lines.iter().map(String::as_str))?;
            let mut requests = Vec::new();
            let mut replayer = Replayer::new(snapshot, |r| requests.push(request_json(&r)));
            replayer.note_held(events.len() as u64);
            for e in events {
                replayer.push(e);
            }
            let stats = replayer.finish();
            Ok(report_json(requests, &stats))
        })
        .py()
    }

    /// Replays a `.trace.jsonl` file as it is read (GIL released); JSON
    /// report. Requests that matched are listed only with `keep_matching`;
    /// `progress(bytes_read)` is called now and then.
    #[pyo3(signature = (path, keep_matching=true, progress=None))]
    fn replay_file(
        &self,
        py: Python<'_>,
        path: PathBuf,
        keep_matching: bool,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<String> {
        let snapshot = self.0.snapshot();
        py.detach(|| {
            let mut requests = Vec::new();
            let mut tick = |n: u64| {
                if let Some(cb) = &progress {
                    Python::attach(|py| {
                        if let Err(e) = cb.call1(py, (n,)) {
                            e.write_unraisable(py, None);
                        }
                    });
                }
            };
            let keep = |r: ReplayedRequest| {
                if keep_matching || !r.matches {
                    requests.push(request_json(&r));
                }
            };
            let stats = replay_file(&path, snapshot, keep, &mut tick)?;
            Ok(report_json(requests, &stats))
        })
        .py()
    }
}
