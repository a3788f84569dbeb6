//! `NativeRuntime`: the core runtime behind a JS handle (wrapped by the
//! `Runtime` class of `node/index.js`). Sessions, custom events, the
//! events held in memory and their verification. Calls run on the JS
//! thread; `flush` and `close`, which wait, run on libuv's pool.

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::Arc;

use napi::bindgen_prelude::AsyncTask;
use napi::{Env, JsString};
use napi_derive::napi;

use crate::ids::parse_uuid;
use crate::runtime::session::{Session, SessionStatus};
use crate::runtime::state::{Direct, Durability, Runtime as CoreRuntime};
use crate::trace::chain::SpanRef;
use crate::trace::event::{is_custom_event_type, EventType, STANDARD_EVENT_TYPES};
use crate::trace::jsonl::write_events_file;
use crate::trace::memory::EventQuery;

use super::clock::NativeManualClock;
use super::errors::{invalid, IntoJsResult};
use super::reports;
use super::tasks::{timeout, Flush};

#[napi(js_name = "NativeRuntime")]
pub struct NativeRuntime {
    pub(super) rt: Arc<CoreRuntime>,
    /// The session and event type of `recordNext` (see `recordTarget`).
    target: RefCell<Option<(Arc<Session>, EventType)>>,
}

/// Runs `op` under the runtime's durability: with `sync`, refused while
/// the trace cannot keep events and returns once its events are written.
pub(super) fn durable<T>(
    rt: &CoreRuntime,
    op: impl FnOnce() -> napi::Result<T>,
) -> napi::Result<T> {
    if rt.config().durability == Durability::Async {
        return op();
    }
    rt.admit_work().js()?;
    let out = op();
    let settled = rt.settle(&Direct);
    let out = out?;
    settled.js()?;
    Ok(out)
}

pub(super) fn uuid(text: &str, path: &str) -> napi::Result<uuid::Uuid> {
    parse_uuid(text, path).js()
}

fn event_type(text: &str) -> napi::Result<EventType> {
    if is_custom_event_type(text) {
        return Ok(EventType::custom(text));
    }
    let why = if STANDARD_EVENT_TYPES.contains(&text) {
        format!("{text:?} is emitted by the runtime only; record custom events as \"x.<name>\"")
    } else {
        format!("{text:?} is not a custom event type (\"x.\" then letters, digits, '.', '_', ':' or '-')")
    };
    Err(invalid("INVALID_EVENT_TYPE", "/event_type", why))
}

/// Events as one JSON array text.
pub(super) fn events_json(events: &[Arc<crate::trace::event::TraceEvent>]) -> String {
    let mut out = Vec::with_capacity(events.len() * 400 + 2);
    out.push(b'[');
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        e.write_json(&mut out);
    }
    out.push(b']');
    String::from_utf8(out).expect("events are written as ASCII")
}

impl NativeRuntime {
    /// Everything recorded so far written, as Python's `_settle` does
    /// before reading events back (a short wait on the JS thread).
    fn settle(&self) -> napi::Result<()> {
        if !self.rt.is_closed() {
            self.rt.flush(None).js()?;
        }
        Ok(())
    }

    fn session(&self, id: &str) -> napi::Result<Arc<Session>> {
        self.rt.session(&uuid(id, "/session_id")?).js()
    }
}

#[napi]
impl NativeRuntime {
    /// `options`: the options object as JSON (see `options.rs`).
    #[napi(constructor)]
    pub fn new(options: String, clock: Option<&NativeManualClock>) -> napi::Result<Self> {
        let config = super::options::config(&options)?;
        let clock = clock.map(|c| Arc::clone(&c.0) as crate::time::SharedClock);
        let rt = CoreRuntime::new(config, clock, Vec::new()).js()?;
        Ok(NativeRuntime {
            rt: Arc::new(rt),
            target: RefCell::new(None),
        })
    }

    #[napi(getter)]
    pub fn hash_algorithm(&self) -> &'static str {
        self.rt.config().recorder.algorithm.as_str()
    }

    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.rt.is_closed()
    }

    /// Starts a session (records `session.started`); its id.
    #[napi]
    pub fn create_session(
        &self,
        agent_id: String,
        goal: String,
        session_id: Option<String>,
        parent_session_id: Option<String>,
    ) -> napi::Result<String> {
        let sid = session_id.map(|s| uuid(&s, "/session_id")).transpose()?;
        let parent = parent_session_id
            .map(|s| uuid(&s, "/parent_session_id"))
            .transpose()?;
        let s = durable(&self.rt, || {
            self.rt
                .create_session(&agent_id, &goal, sid, parent, &Direct)
                .js()
        })?;
        Ok(s.session_id.to_string())
    }

    /// Ends a session (records `session.ended`).
    #[napi]
    pub fn end_session(&self, session_id: String, reason: Option<String>) -> napi::Result<()> {
        let id = uuid(&session_id, "/session_id")?;
        let reason = reason.as_deref().unwrap_or("completed");
        durable(&self.rt, || self.rt.end_session(&id, reason).js())
    }

    /// Chooses the session and custom (`x.`-prefixed) event type of the
    /// `recordNext` calls that follow. `index.js` calls it only when they
    /// change, so a loop of `record()` calls copies one string out of V8.
    #[napi]
    pub fn record_target(&self, session_id: String, event_type: String) -> napi::Result<()> {
        *self.target.borrow_mut() = None;
        let session = self.session(&session_id)?;
        let event_type = self::event_type(&event_type)?;
        *self.target.borrow_mut() = Some((session, event_type));
        Ok(())
    }

    /// Records an event of the chosen target; `payload` is JSON text of an object.
    #[napi]
    pub fn record_next(&self, env: Env, payload: JsString) -> napi::Result<()> {
        let target = self.target.borrow();
        let Some((session, event_type)) = &*target else {
            return Err(invalid(
                "INVALID_STATE",
                "",
                "recordNext before recordTarget",
            ));
        };
        let canonical = super::text::with_str(&env, &payload, |text| {
            if !text.starts_with('{') {
                return Err(invalid(
                    "INVALID_PAYLOAD",
                    "",
                    "a payload must be an object",
                ));
            }
            crate::json::canonical::text::text_to_canonical(text).js()
        })?;
        let rec = self.rt.record_for(
            session,
            event_type.clone(),
            canonical.into_boxed_str(),
            SpanRef::Fresh,
        );
        durable(&self.rt, || self.rt.push(session, rec, &Direct).js())
    }

    /// A session as JSON text.
    #[napi]
    pub fn get_session(&self, session_id: String) -> napi::Result<String> {
        Ok(reports::session(&*self.session(&session_id)?).to_string())
    }

    /// Sessions (all, or `"active"` / `"ended"` ones) as a JSON array text.
    #[napi]
    pub fn list_sessions(&self, status: Option<String>) -> napi::Result<String> {
        let status = match status.as_deref() {
            None => None,
            Some("active") => Some(SessionStatus::Active),
            Some("ended") => Some(SessionStatus::Ended),
            Some(other) => {
                return Err(invalid(
                    "INVALID_OPTION",
                    "/status",
                    format!("status must be \"active\" or \"ended\", not {other:?}"),
                ))
            }
        };
        let list: Vec<_> = self
            .rt
            .sessions(status)
            .iter()
            .map(|s| reports::session(s))
            .collect();
        Ok(serde_json::Value::Array(list).to_string())
    }

    /// A session's events (everything recorded so far), as a JSON array text.
    #[napi]
    pub fn events(
        &self,
        session_id: String,
        event_type: Option<String>,
        since_sequence: Option<i64>,
        limit: Option<u32>,
    ) -> napi::Result<String> {
        let id = uuid(&session_id, "/session_id")?;
        self.settle()?;
        let q = EventQuery {
            event_type: event_type.as_deref(),
            since_sequence: since_sequence.map(|s| s.max(0) as u64),
            limit: limit.map(|l| l as usize),
        };
        Ok(events_json(&self.rt.events(&id, &q)))
    }

    /// Every event held in memory, session by session, as a JSON array text.
    #[napi]
    pub fn all_events(&self) -> napi::Result<String> {
        self.settle()?;
        Ok(events_json(&self.rt.all_events()))
    }

    /// Verifies a session's chain (everything recorded so far); the report as JSON text.
    #[napi]
    pub fn verify(&self, session_id: String) -> napi::Result<String> {
        let id = uuid(&session_id, "/session_id")?;
        self.settle()?;
        let report = self.rt.verify_session(&id).js()?;
        Ok(reports::chain(&report).to_string())
    }

    /// Writes events held in memory to a `.trace.jsonl` file atomically; the count.
    #[napi]
    pub fn export_jsonl(&self, path: String, session_id: Option<String>) -> napi::Result<u32> {
        self.settle()?;
        let events = match session_id {
            Some(s) => self
                .rt
                .events(&uuid(&s, "/session_id")?, &EventQuery::default()),
            None => self.rt.all_events(),
        };
        let n = write_events_file(&PathBuf::from(path), &events).js()?;
        Ok(n as u32)
    }

    /// Recorder and memory counters as JSON text.
    #[napi]
    pub fn stats(&self) -> String {
        let (r, memory_events, (evicted_events, evicted_sessions), sessions) = self.rt.stats();
        serde_json::json!({
            "recorded": r.recorded,
            "sealed": r.sealed,
            "written": r.written,
            "dropped": r.dropped,
            "queueDepth": r.queue_depth,
            "highWaterMark": r.high_water_mark,
            "sinkErrors": r.sink_errors,
            "memoryEvents": memory_events,
            "evictedEvents": evicted_events,
            "evictedSessions": evicted_sessions,
            "sessions": sessions,
        })
        .to_string()
    }

    /// Records that a session's agent is alive (see the heartbeat options).
    #[napi]
    pub fn heartbeat(&self, session_id: String) -> napi::Result<()> {
        self.rt.heartbeat(&uuid(&session_id, "/session_id")?).js()
    }

    /// Ends every session past its lifetime; their ids.
    #[napi]
    pub fn expire_sessions(&self) -> Vec<String> {
        self.rt
            .expire_sessions()
            .iter()
            .map(|u| u.to_string())
            .collect()
    }

    /// The runtime clock's reading as an RFC 3339 timestamp.
    #[napi]
    pub fn timestamp(&self) -> String {
        crate::time::format_timestamp(self.rt.now())
    }

    /// Resolves to true once everything recorded before the call is
    /// written and synced (false on timeout); waits off the JS thread.
    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn flush(&self, timeout_seconds: Option<f64>) -> napi::Result<AsyncTask<Flush>> {
        Ok(AsyncTask::new(Flush {
            rt: Arc::clone(&self.rt),
            timeout: timeout(timeout_seconds)?,
            close: false,
        }))
    }

    /// Flushes, then stops the flush thread; later records are refused.
    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn close(&self, timeout_seconds: Option<f64>) -> napi::Result<AsyncTask<Flush>> {
        Ok(AsyncTask::new(Flush {
            rt: Arc::clone(&self.rt),
            timeout: timeout(timeout_seconds)?,
            close: true,
        }))
    }
}
