//! `cra._core.Runtime`: the core runtime behind a frozen handle. The GIL is
//! released wherever the call may wait (full queue, flush, close).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::error::CoreError;
use crate::ids::parse_uuid;
use crate::runtime::session::{Session, SessionStatus};
use crate::runtime::state::{Durability, Runtime as CoreRuntime, RuntimeConfig, Wait};
use crate::trace::chain::SpanRef;
use crate::trace::event::{is_custom_event_type, EventType, STANDARD_EVENT_TYPES};
use crate::trace::hash::HashAlgorithm;
use crate::trace::jsonl::write_events_file;
use crate::trace::memory::EventQuery;
use crate::trace::recorder::{Overflow, RecorderConfig};
use crate::trace::signing::CheckpointKey;
use crate::trace::sink::SinkFactory;

use super::cache::IdentityCache;
use super::convert::payload_to_canonical;
use super::errors::IntoPyResult;
use super::event::Event;
use super::options::checkpointing;
use super::verify::ChainReport;

/// Waits with the GIL released.
pub struct Detached<'py>(pub Python<'py>);

impl Wait for Detached<'_> {
    fn wait<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        self.0.detach(f)
    }
}

#[pyclass(frozen, module = "cra._core", name = "Runtime")]
pub struct Runtime(pub Arc<CoreRuntime>, pub Caches);

pub(super) fn timeout(seconds: Option<f64>) -> PyResult<Option<Duration>> {
    match seconds {
        None => Ok(None),
        Some(s) if s.is_finite() && s >= 0.0 => Ok(Some(Duration::from_secs_f64(s))),
        Some(s) => Err(super::errors::to_py(CoreError::invalid(
            "INVALID_OPTION",
            "/timeout",
            format!("timeout must be a number of seconds >= 0, not {s}"),
        ))),
    }
}

fn session_dict<'py>(py: Python<'py>, s: &Session) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("session_id", s.session_id.to_string())?;
    d.set_item("trace_id", s.trace_id.to_string())?;
    d.set_item("root_span_id", s.root_span.to_string())?;
    d.set_item("agent_id", &s.agent_id)?;
    d.set_item("goal", &s.goal)?;
    d.set_item(
        "parent_session_id",
        s.parent_session_id.map(|p| p.to_string()),
    )?;
    d.set_item("status", s.status().as_str())?;
    d.set_item(
        "created_at",
        crate::time::format_timestamp(s.created_micros),
    )?;
    d.set_item(
        "ended_at",
        s.ended_micros().map(crate::time::format_timestamp),
    )?;
    d.set_item("end_reason", s.end_reason())?;
    Ok(d)
}

fn text<'a, 'py>(obj: &'a Bound<'py, PyAny>, path: &str) -> PyResult<&'a Bound<'py, PyString>> {
    obj.cast::<PyString>().map_err(|_| {
        super::errors::to_py(CoreError::invalid(
            "INVALID_REQUEST",
            path,
            "must be a string",
        ))
    })
}

impl Runtime {
    /// Runs one operation under the runtime's durability: with `sync`, it
    /// is refused while the trace cannot keep events (`TRACE_UNAVAILABLE`)
    /// and returns only once its events are written. The operation's own
    /// error wins over a failed wait.
    #[inline]
    pub(super) fn durable<T>(
        &self,
        py: Python<'_>,
        op: impl FnOnce() -> PyResult<T>,
    ) -> PyResult<T> {
        durable(&self.0, py, op)
    }

    fn session(&self, id: &str) -> PyResult<Arc<Session>> {
        let id = parse_uuid(id, "/session_id").py()?;
        self.0.session(&id).py()
    }

    /// The session named by a Python string, remembered by the string's identity.
    #[inline]
    fn cached_session(&self, id: &Bound<'_, PyAny>) -> PyResult<Arc<Session>> {
        let id = text(id, "/session_id")?;
        if let Some(s) = self.1.sessions.get(id) {
            return Ok(s);
        }
        let session = self.session(&id.to_cow()?)?;
        self.1.sessions.put(id, Arc::clone(&session));
        Ok(session)
    }

    /// A checked custom event type, remembered by the string's identity.
    #[inline]
    fn cached_event_type(&self, name: &Bound<'_, PyAny>) -> PyResult<EventType> {
        let name = text(name, "/event_type")?;
        if let Some(t) = self.1.event_types.get(name) {
            return Ok(t);
        }
        let text = name.to_cow()?;
        if !is_custom_event_type(&text) {
            let why = if STANDARD_EVENT_TYPES.contains(&&*text) {
                format!(
                    "{text:?} is emitted by the runtime only; record custom events as \"x.<name>\""
                )
            } else {
                format!("{text:?} is not a custom event type (\"x.\" then letters, digits, '.', '_', ':' or '-')")
            };
            return Err(super::errors::to_py(CoreError::invalid(
                "INVALID_EVENT_TYPE",
                "/event_type",
                why,
            )));
        }
        let t = EventType::custom(&text);
        self.1.event_types.put(name, t.clone());
        Ok(t)
    }
}

/// `Runtime::durable` for any holder of the core runtime.
#[inline]
pub(super) fn durable<T>(
    rt: &CoreRuntime,
    py: Python<'_>,
    op: impl FnOnce() -> PyResult<T>,
) -> PyResult<T> {
    if rt.config().durability == Durability::Async {
        return op();
    }
    rt.admit_work().py()?;
    let out = op();
    let settled = rt.settle(&Detached(py));
    let out = out?;
    settled.py()?;
    Ok(out)
}

/// Conversions remembered between calls (see `cache.rs`).
#[derive(Default)]
pub struct Caches {
    sessions: IdentityCache<Arc<Session>>,
    event_types: IdentityCache<EventType>,
}

#[pymethods]
impl Runtime {
    #[new]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (hash_algorithm="sha256", trace_file=None, sinks=Vec::new(), queue_capacity=65_536, overflow="block", memory_limit=1_000_000, batch_max=4096, clock_skew_seconds=Some(300.0), max_resolutions=100_000, clock=None, session_idle_seconds=None, session_max_seconds=None, heartbeat_interval_seconds=None, heartbeat_misses_allowed=2, durability="async", queue_wait_seconds=None, signing_key=None, checkpoint_events=1000, checkpoint_seconds=Some(10.0), checkpoint_at_flush=true, redaction_key=None, expose_errors=false))]
    fn new(
        py: Python<'_>,
        hash_algorithm: &str,
        trace_file: Option<PathBuf>,
        sinks: Vec<Py<PyAny>>,
        queue_capacity: usize,
        overflow: &str,
        memory_limit: usize,
        batch_max: usize,
        clock_skew_seconds: Option<f64>,
        max_resolutions: usize,
        clock: Option<&Bound<'_, PyAny>>,
        session_idle_seconds: Option<f64>,
        session_max_seconds: Option<f64>,
        heartbeat_interval_seconds: Option<f64>,
        heartbeat_misses_allowed: u32,
        durability: &str,
        queue_wait_seconds: Option<f64>,
        signing_key: Option<PathBuf>,
        checkpoint_events: u64,
        checkpoint_seconds: Option<f64>,
        checkpoint_at_flush: bool,
        redaction_key: Option<Vec<u8>>,
        expose_errors: bool,
    ) -> PyResult<Self> {
        let secs = |v: Option<f64>, path: &str| -> PyResult<Option<i64>> {
            match v {
                None => Ok(None),
                Some(s) if s.is_finite() && s > 0.0 => Ok(Some((s * 1e6) as i64)),
                Some(s) => Err(super::errors::to_py(CoreError::invalid(
                    "INVALID_OPTION",
                    path,
                    format!("must be a number of seconds > 0, not {s}"),
                ))),
            }
        };
        let lifetime = crate::runtime::lifetime::Lifetime {
            idle: secs(session_idle_seconds, "/session_idle_seconds")?,
            max: secs(session_max_seconds, "/session_max_seconds")?,
            heartbeat: secs(heartbeat_interval_seconds, "/heartbeat_interval_seconds")?
                .map(|i| (i, heartbeat_misses_allowed)),
        };
        let clock = super::timing::shared_clock(clock)?;
        let clock_skew = match clock_skew_seconds {
            None => None,
            Some(s) if s.is_finite() && s >= 0.0 => Some((s * 1e6) as i64),
            Some(s) => {
                return Err(super::errors::to_py(CoreError::invalid(
                    "INVALID_OPTION",
                    "/clock_skew_seconds",
                    format!("must be a number of seconds >= 0 or None, not {s}"),
                )))
            }
        };
        let config = RuntimeConfig {
            recorder: RecorderConfig {
                capacity: queue_capacity,
                overflow: Overflow::parse(overflow).py()?,
                algorithm: HashAlgorithm::parse(hash_algorithm).py()?,
                batch_max,
                checkpoints: checkpointing(
                    signing_key.as_deref(),
                    checkpoint_events,
                    checkpoint_seconds,
                    checkpoint_at_flush,
                )?,
                queue_wait: timeout(queue_wait_seconds).map_err(|_| {
                    super::errors::to_py(CoreError::invalid(
                        "INVALID_OPTION",
                        "/queue_wait_seconds",
                        "must be a number of seconds >= 0 or None",
                    ))
                })?,
            },
            memory_limit,
            trace_file,
            clock_skew,
            max_resolutions,
            lifetime,
            durability: Durability::parse(durability).py()?,
            redaction: crate::carp::redact::Redaction::new(redaction_key.as_deref(), expose_errors)
                .py()?,
        };
        // A native sink (an SQLite store) is written by the flush thread
        // itself; any other object through its Python `write_batch`.
        let extra: Vec<Arc<dyn SinkFactory>> = sinks
            .into_iter()
            .map(|s| super::native::sink_of(s.bind(py)))
            .collect();
        let rt = py.detach(|| CoreRuntime::new(config, clock, extra)).py()?;
        Ok(Runtime(Arc::new(rt), Caches::default()))
    }

    #[getter]
    fn hash_algorithm(&self) -> &'static str {
        self.0.config().recorder.algorithm.as_str()
    }

    /// Starts a session (records `session.started`) and returns its id.
    #[pyo3(signature = (agent_id, goal, session_id=None, parent_session_id=None))]
    fn create_session(
        &self,
        py: Python<'_>,
        agent_id: &str,
        goal: &str,
        session_id: Option<&str>,
        parent_session_id: Option<&str>,
    ) -> PyResult<String> {
        let sid = session_id
            .map(|s| parse_uuid(s, "/session_id"))
            .transpose()
            .py()?;
        let parent = parent_session_id
            .map(|s| parse_uuid(s, "/parent_session_id"))
            .transpose()
            .py()?;
        let s = self.durable(py, || {
            self.0
                .create_session(agent_id, goal, sid, parent, &Detached(py))
                .py()
        })?;
        Ok(s.session_id.to_string())
    }

    /// Records a custom (`x.`-prefixed) event into a session's chain.
    fn record(
        &self,
        py: Python<'_>,
        session_id: &Bound<'_, PyAny>,
        event_type: &Bound<'_, PyAny>,
        payload: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let session = self.cached_session(session_id)?;
        let event_type = self.cached_event_type(event_type)?;
        let payload = payload_to_canonical(payload).py()?;
        let rec = self
            .0
            .record_for(&session, event_type, payload, SpanRef::Fresh);
        self.durable(py, || self.0.push(&session, rec, &Detached(py)).py())
    }

    /// Continues a session an earlier runtime recorded (see `cra.storage`).
    #[pyo3(signature = (session_id, trace_id, root_span_id, agent_id, goal, started_at, next_sequence, previous_hash))]
    #[allow(clippy::too_many_arguments)]
    fn resume_session(
        &self,
        py: Python<'_>,
        session_id: &str,
        trace_id: &str,
        root_span_id: &str,
        agent_id: &str,
        goal: &str,
        started_at: &str,
        next_sequence: u64,
        previous_hash: &str,
    ) -> PyResult<String> {
        let sid = parse_uuid(session_id, "/session_id").py()?;
        let tid = parse_uuid(trace_id, "/trace_id").py()?;
        let root = parse_uuid(root_span_id, "/root_span_id").py()?;
        let created = crate::time::parse_timestamp(started_at, "/started_at").py()?;
        let prev = crate::trace::hash::from_hex(previous_hash).ok_or_else(|| {
            super::errors::to_py(CoreError::invalid(
                "INVALID_OPTION",
                "/previous_hash",
                "must be 64 hex digits",
            ))
        })?;
        self.0
            .resume_session(
                sid,
                tid,
                root,
                agent_id,
                goal,
                created,
                next_sequence,
                prev,
                &Detached(py),
            )
            .map(|s| s.session_id.to_string())
            .py()
    }

    /// Ends a session (records `session.ended`).
    #[pyo3(signature = (session_id, reason="completed"))]
    fn end_session(&self, py: Python<'_>, session_id: &str, reason: &str) -> PyResult<()> {
        let id = parse_uuid(session_id, "/session_id").py()?;
        let rt = &self.0;
        self.durable(py, || py.detach(|| rt.end_session(&id, reason)).py())
    }

    fn get_session<'py>(&self, py: Python<'py>, session_id: &str) -> PyResult<Bound<'py, PyDict>> {
        session_dict(py, &*self.session(session_id)?)
    }

    #[pyo3(signature = (status=None))]
    fn list_sessions<'py>(
        &self,
        py: Python<'py>,
        status: Option<&str>,
    ) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let status = match status {
            None => None,
            Some("active") => Some(SessionStatus::Active),
            Some("ended") => Some(SessionStatus::Ended),
            Some(other) => {
                return Err(super::errors::to_py(CoreError::invalid(
                    "INVALID_OPTION",
                    "/status",
                    format!("status must be \"active\" or \"ended\", not {other:?}"),
                )))
            }
        };
        self.0
            .sessions(status)
            .iter()
            .map(|s| session_dict(py, s))
            .collect()
    }

    /// True once everything recorded before the call is written and synced.
    #[pyo3(signature = (timeout=None))]
    fn flush(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let t = self::timeout(timeout)?;
        let rt = &self.0;
        py.detach(|| rt.flush(t)).py()
    }

    /// Flushes, then stops the flush thread; later records are refused.
    #[pyo3(signature = (timeout=None))]
    fn close(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let t = self::timeout(timeout)?;
        let rt = &self.0;
        py.detach(|| rt.close(t)).py()
    }

    #[getter]
    fn closed(&self) -> bool {
        self.0.is_closed()
    }

    /// A session's written events held in memory, in sequence order.
    #[pyo3(signature = (session_id, event_type=None, since_sequence=None, limit=None))]
    fn events(
        &self,
        session_id: &str,
        event_type: Option<&str>,
        since_sequence: Option<u64>,
        limit: Option<usize>,
    ) -> PyResult<Vec<Event>> {
        let id = parse_uuid(session_id, "/session_id").py()?;
        let q = EventQuery {
            event_type,
            since_sequence,
            limit,
        };
        Ok(self.0.events(&id, &q).into_iter().map(Event).collect())
    }

    /// Every event held in memory, session by session.
    fn all_events(&self) -> Vec<Event> {
        self.0.all_events().into_iter().map(Event).collect()
    }

    /// Verifies a session's chain as held in memory.
    fn verify(&self, py: Python<'_>, session_id: &str) -> PyResult<ChainReport> {
        let id = parse_uuid(session_id, "/session_id").py()?;
        let rt = &self.0;
        py.detach(|| rt.verify_session(&id)).map(ChainReport).py()
    }

    /// A session's signed checkpoints checked with a public key file, as
    /// held in memory: a dict as `FileReport.signatures` gives per session.
    fn verify_signatures<'py>(
        &self,
        py: Python<'py>,
        session_id: &str,
        public_key: PathBuf,
    ) -> PyResult<Bound<'py, PyDict>> {
        let id = parse_uuid(session_id, "/session_id").py()?;
        let key = CheckpointKey::from_pem_file(&public_key).py()?;
        let rt = &self.0;
        let report = py.detach(|| rt.verify_signatures(&id, &key)).py()?;
        super::verify::signature_dict(py, &report)
    }

    /// Writes events held in memory to a `.trace.jsonl` file atomically; returns the count.
    #[pyo3(signature = (path, session_id=None))]
    fn export_jsonl(
        &self,
        py: Python<'_>,
        path: PathBuf,
        session_id: Option<&str>,
    ) -> PyResult<usize> {
        let events = match session_id {
            Some(s) => {
                let id = parse_uuid(s, "/session_id").py()?;
                self.0.events(&id, &EventQuery::default())
            }
            None => self.0.all_events(),
        };
        py.detach(|| write_events_file(&path, &events)).py()
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (r, memory_events, (evicted_events, evicted_sessions), sessions) = self.0.stats();
        let d = PyDict::new(py);
        d.set_item("recorded", r.recorded)?;
        d.set_item("sealed", r.sealed)?;
        d.set_item("written", r.written)?;
        d.set_item("dropped", r.dropped)?;
        d.set_item("queue_depth", r.queue_depth)?;
        d.set_item("high_water_mark", r.high_water_mark)?;
        d.set_item("sink_errors", r.sink_errors)?;
        d.set_item("orphaned", r.orphaned)?;
        d.set_item("repaired_bytes", r.repaired_bytes)?;
        d.set_item("memory_events", memory_events)?;
        d.set_item("evicted_events", evicted_events)?;
        d.set_item("evicted_sessions", evicted_sessions)?;
        d.set_item("sessions", sessions)?;
        Ok(d)
    }

    /// Records that a session's agent is alive (see heartbeat settings).
    fn heartbeat(&self, session_id: &str) -> PyResult<()> {
        let id = parse_uuid(session_id, "/session_id").py()?;
        self.0.heartbeat(&id).py()
    }

    /// Ends every session past its lifetime; returns their ids.
    fn expire_sessions(&self, py: Python<'_>) -> Vec<String> {
        let rt = &self.0;
        py.detach(|| rt.expire_sessions())
            .iter()
            .map(|u| u.to_string())
            .collect()
    }

    /// The runtime clock's reading, seconds since the epoch.
    fn now(&self) -> f64 {
        self.0.now() as f64 / 1e6
    }

    /// The runtime clock's reading as an RFC 3339 timestamp.
    fn timestamp(&self) -> String {
        crate::time::format_timestamp(self.0.now())
    }

    /// Called in a forked child: a fresh recorder, no sessions.
    fn _after_fork(&self) -> PyResult<()> {
        self.1.sessions.clear();
        self.0.after_fork().py()
    }
}
