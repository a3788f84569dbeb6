//! The runtime: sessions, the recorder and its sinks, the in-memory store.
//! Every operation that can wait takes a [`Wait`] so the Python glue can
//! release the GIL around the waiting part only.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use parking_lot::RwLock;
use uuid::Uuid;

use crate::approvals::Approvals;
use crate::canonical::write_str;
use crate::chain::{Body, ChainStart, Record, SpanRef};
use crate::error::{CoreError, Result};
use crate::event::{EventType, TraceEvent};
use crate::hash::GENESIS_HASH;
use crate::ids::new_v7;
use crate::ids::IdMap;
use crate::jsonl::JsonlSinkFactory;
use crate::limits::Limits;
use crate::memory::{EventQuery, MemorySink, MemoryStore, DEFAULT_MEMORY_LIMIT};
use crate::recorder::{Pushed, Recorder, RecorderConfig, RecorderStats};
use crate::registry::Registry;
use crate::resolution_store::{ResolutionStore, DEFAULT_MAX_RESOLUTIONS};
use crate::session::{Session, SessionStatus};
use crate::sink::{Sink, SinkFactory};
use crate::time::{Micros, SharedClock, SystemClock};
use crate::verify::{ChainVerification, ChainVerifier};

/// How to wait: directly, or with some lock (the GIL) released.
pub trait Wait {
    fn wait<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T;
}

/// Waits on the current thread as it is.
pub struct Direct;

impl Wait for Direct {
    fn wait<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        f()
    }
}

#[derive(Clone)]
pub struct RuntimeConfig {
    pub recorder: RecorderConfig,
    pub memory_limit: usize,
    pub trace_file: Option<PathBuf>,
    /// Largest accepted distance between a request's timestamp and the
    /// clock, in microseconds; `None` disables the check.
    pub clock_skew: Option<Micros>,
    pub max_resolutions: usize,
    pub lifetime: crate::lifetime::Lifetime,
}

pub const DEFAULT_CLOCK_SKEW: Micros = 300 * 1_000_000;

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            recorder: RecorderConfig::default(),
            memory_limit: DEFAULT_MEMORY_LIMIT,
            trace_file: None,
            clock_skew: Some(DEFAULT_CLOCK_SKEW),
            max_resolutions: DEFAULT_MAX_RESOLUTIONS,
            lifetime: crate::lifetime::Lifetime::default(),
        }
    }
}

pub const MAX_AGENT_ID: usize = 255;
pub const MAX_GOAL: usize = 10_000;

pub struct Runtime {
    config: RuntimeConfig,
    clock: SharedClock,
    factories: Vec<Arc<dyn SinkFactory>>,
    recorder: ArcSwap<Recorder>,
    memory: ArcSwap<MemoryStore>,
    /// Swapped whole in a forked child (a lock held at fork time stays held).
    sessions: ArcSwap<SessionTable>,
    pub(crate) registry: Registry,
    pub(crate) limits: Limits,
    pub(crate) resolutions: ResolutionStore,
    pub(crate) approvals: Approvals,
}

type SessionTable = RwLock<IdMap<Arc<Session>>>;

impl Runtime {
    pub fn new(
        config: RuntimeConfig,
        clock: Option<SharedClock>,
        extra_sinks: Vec<Arc<dyn SinkFactory>>,
    ) -> Result<Self> {
        let mut factories: Vec<Arc<dyn SinkFactory>> = Vec::new();
        if let Some(path) = &config.trace_file {
            factories.push(Arc::new(JsonlSinkFactory(path.clone())));
        }
        factories.extend(extra_sinks);
        let (recorder, memory) = open_recorder(&config, &factories, false)?;
        Ok(Runtime {
            clock: clock.unwrap_or_else(|| Arc::new(SystemClock)),
            factories,
            recorder: ArcSwap::from_pointee(recorder),
            memory: ArcSwap::new(memory),
            sessions: ArcSwap::from_pointee(RwLock::new(IdMap::default())),
            registry: Registry::new(),
            limits: Limits::new(),
            resolutions: ResolutionStore::new(config.max_resolutions),
            approvals: Approvals::new(config.max_resolutions),
            config,
        })
    }

    pub fn now(&self) -> Micros {
        self.clock.now_micros()
    }

    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// Starts a session and records `session.started`.
    pub fn create_session(
        &self,
        agent_id: &str,
        goal: &str,
        session_id: Option<Uuid>,
        parent_session_id: Option<Uuid>,
        wait: &impl Wait,
    ) -> Result<Arc<Session>> {
        check_len("/agent_id", agent_id, MAX_AGENT_ID)?;
        check_len("/goal", goal, MAX_GOAL)?;
        let now = self.now();
        let session_id = session_id.unwrap_or_else(|| new_v7(now));
        let session = Arc::new(Session::new(
            session_id,
            new_v7(now),
            new_v7(now),
            agent_id.to_string(),
            goal.to_string(),
            parent_session_id,
            now,
        ));
        {
            let table = self.sessions.load();
            let mut sessions = table.write();
            if sessions.contains_key(&session_id) {
                return Err(CoreError::SessionExists(session_id.to_string()));
            }
            sessions.insert(session_id, Arc::clone(&session));
        }
        let mut payload = Payload::new();
        payload.str("agent_id", agent_id).str("goal", goal);
        if let Some(p) = parent_session_id {
            payload.str("parent_session_id", &p.to_string());
        }
        let mut rec = self.record_for(
            &session,
            "session.started".into(),
            payload.finish(),
            SpanRef::Root,
        );
        rec.micros = now;
        rec.start = Some(Box::new(ChainStart {
            trace_id: session.trace_id,
            root_span: session.root_span,
            next_sequence: 0,
            previous_hash: [0; 32],
        }));
        debug_assert_eq!(GENESIS_HASH.len(), 64);
        if let Err(e) = self.push(&session, rec, wait) {
            // Nothing was recorded (e.g. the recorder is closed): leave no session.
            self.sessions.load().write().remove(&session_id);
            return Err(e);
        }
        Ok(session)
    }

    /// Continues a session recorded by an earlier runtime (its chain picks
    /// up at `next_sequence`, linked to `previous_hash`). Records nothing.
    #[allow(clippy::too_many_arguments)]
    pub fn resume_session(
        &self,
        session_id: Uuid,
        trace_id: Uuid,
        root_span: Uuid,
        agent_id: &str,
        goal: &str,
        created_micros: Micros,
        next_sequence: u64,
        previous_hash: [u8; 32],
        wait: &impl Wait,
    ) -> Result<Arc<Session>> {
        let session = Arc::new(Session::new(
            session_id,
            trace_id,
            root_span,
            agent_id.to_string(),
            goal.to_string(),
            None,
            created_micros,
        ));
        {
            let table = self.sessions.load();
            let mut sessions = table.write();
            if sessions.contains_key(&session_id) {
                return Err(CoreError::SessionExists(session_id.to_string()));
            }
            sessions.insert(session_id, Arc::clone(&session));
        }
        let rec = Record {
            session_id,
            span: SpanRef::Root,
            micros: self.now(),
            body: Body::Many(Arc::new(NoEvents)),
            start: Some(Box::new(ChainStart {
                trace_id,
                root_span,
                next_sequence,
                previous_hash,
            })),
            ends_chain: false,
        };
        if let Err(e) = self.push(&session, rec, wait) {
            self.sessions.load().write().remove(&session_id);
            return Err(e);
        }
        Ok(session)
    }

    pub fn session(&self, id: &Uuid) -> Result<Arc<Session>> {
        self.sessions
            .load()
            .read()
            .get(id)
            .cloned()
            .ok_or_else(|| CoreError::SessionNotFound(id.to_string()))
    }

    /// Sessions in creation order, optionally only those of one status.
    pub fn sessions(&self, status: Option<SessionStatus>) -> Vec<Arc<Session>> {
        let mut all: Vec<Arc<Session>> = self
            .sessions
            .load()
            .read()
            .values()
            .filter(|s| status.is_none_or(|st| s.status() == st))
            .cloned()
            .collect();
        all.sort_by_key(|s| (s.created_micros, s.session_id));
        all
    }

    /// Ends a session and records `session.ended`; an ended session refuses.
    pub fn end_session(&self, id: &Uuid, reason: &str) -> Result<()> {
        check_len("/reason", reason, 1000)?;
        let session = self.session(id)?;
        self.end(&session, reason)
    }

    /// Ends a session (once) with `reason`.
    pub(crate) fn end(&self, session: &Session, reason: &str) -> Result<()> {
        let id = &session.session_id;
        let now = self.now();
        if !session.close_gate(now, reason) {
            return Err(CoreError::SessionEnded(id.to_string()));
        }
        let mut payload = Payload::new();
        payload
            .int("duration_ms", (now - session.created_micros).max(0) / 1000)
            .str("reason", reason);
        let mut rec = self.record_for(
            session,
            "session.ended".into(),
            payload.finish(),
            SpanRef::Fresh,
        );
        rec.ends_chain = true;
        rec.micros = now;
        // The gate is closed, so push directly (nothing else can follow).
        self.recorder.load().push(rec)
    }

    /// A record for `session` stamped with the clock's current reading.
    pub fn record_for(
        &self,
        session: &Session,
        event_type: EventType,
        payload: Box<str>,
        span: SpanRef,
    ) -> Record {
        Record {
            session_id: session.session_id,
            span,
            micros: self.now(),
            body: Body::One(event_type, payload),
            start: None,
            ends_chain: false,
        }
    }

    /// Pushes `rec` while the session is held open, waiting through `wait`
    /// when the queue is full.
    #[inline]
    pub fn push(&self, session: &Session, rec: Record, wait: &impl Wait) -> Result<()> {
        if self.config.lifetime.is_set() {
            self.check_lifetime(session)?;
        }
        session.touch(rec.micros);
        session.while_open(|| {
            let recorder = self.recorder.load();
            match recorder.try_push(rec)? {
                Pushed::Full(rec) => wait.wait(|| recorder.push_blocking(rec)),
                Pushed::Queued | Pushed::Dropped => Ok(()),
            }
        })
    }

    pub fn events(&self, id: &Uuid, query: &EventQuery<'_>) -> Vec<Arc<TraceEvent>> {
        self.memory.load().events(id, query)
    }

    pub fn all_events(&self) -> Vec<Arc<TraceEvent>> {
        self.memory.load().all_events()
    }

    /// Verifies a session's chain as held in memory (from its anchor when
    /// the memory limit evicted its oldest events).
    pub fn verify_session(&self, id: &Uuid) -> Result<ChainVerification> {
        let memory = self.memory.load();
        let (evicted, anchor) = memory.eviction(id);
        if evicted {
            return Err(CoreError::invalid(
                "EVENTS_EVICTED",
                "/session_id",
                format!("the events of session {id} were evicted from memory (memory_limit); verify its trace file or store"),
            ));
        }
        let events = memory.events(id, &EventQuery::default());
        let mut v = match anchor {
            Some((seq, prev)) => ChainVerifier::anchored(seq, &crate::hash::to_hex(&prev)),
            None => ChainVerifier::new(),
        };
        for e in &events {
            e.with_text(|text| v.push(text, None));
        }
        Ok(v.finish())
    }

    /// The hash algorithm of this runtime's chains (also used for
    /// `parameters_hash` and `result_hash`).
    pub fn algorithm(&self) -> crate::hash::HashAlgorithm {
        self.config.recorder.algorithm
    }

    pub fn flush(&self, timeout: Option<Duration>) -> Result<bool> {
        self.recorder.load().flush(timeout)
    }

    pub fn close(&self, timeout: Option<Duration>) -> Result<bool> {
        self.recorder.load().close(timeout)
    }

    pub fn is_closed(&self) -> bool {
        self.recorder.load().is_closed()
    }

    pub fn stats(&self) -> (RecorderStats, usize, (u64, u64), usize) {
        let memory = self.memory.load();
        (
            self.recorder.load().stats(),
            memory.len(),
            memory.evicted(),
            self.sessions.load().read().len(),
        )
    }

    /// In a child after `fork()`: a fresh recorder and store, no sessions.
    /// The parent's recorder is left untouched (its thread does not exist here).
    pub fn after_fork(&self) -> Result<()> {
        let (recorder, memory) = open_recorder(&self.config, &self.factories, true)?;
        std::mem::forget(self.recorder.swap(Arc::new(recorder)));
        self.memory.store(memory);
        // The parent may have held this lock while forking: never touch it.
        std::mem::forget(self.sessions.swap(Arc::new(RwLock::new(IdMap::default()))));
        Ok(())
    }
}

fn open_recorder(
    config: &RuntimeConfig,
    factories: &[Arc<dyn SinkFactory>],
    in_child: bool,
) -> Result<(Recorder, Arc<MemoryStore>)> {
    let memory = Arc::new(MemoryStore::new(config.memory_limit));
    let mut sinks: Vec<Box<dyn Sink>> = vec![Box::new(MemorySink(Arc::clone(&memory)))];
    for f in factories {
        sinks.push(if in_child {
            f.open_in_child()?
        } else {
            f.open()?
        });
    }
    Ok((Recorder::start(config.recorder.clone(), sinks)?, memory))
}

/// Verifies events of one chain held in memory.
pub fn verify_events(events: &[Arc<TraceEvent>]) -> ChainVerification {
    let mut v = ChainVerifier::new();
    for e in events {
        e.with_text(|text| v.push(text, None));
    }
    v.finish()
}

fn check_len(path: &str, value: &str, max: usize) -> Result<()> {
    let n = value.chars().count();
    if n == 0 || n > max {
        return Err(CoreError::invalid(
            "INVALID_REQUEST",
            path,
            format!("must be 1 to {max} characters (got {n})"),
        ));
    }
    Ok(())
}

/// A record that only (re)opens a chain.
struct NoEvents;

impl crate::chain::EventSource for NoEvents {
    fn count(&self) -> usize {
        0
    }
    fn render(&self, _emit: &mut dyn FnMut(EventType, Box<str>)) {}
}

/// Builds a canonical payload whose keys are added in sorted order.
pub struct Payload {
    out: Vec<u8>,
}

impl Default for Payload {
    fn default() -> Self {
        Self::new()
    }
}

impl Payload {
    pub fn new() -> Self {
        let mut out = Vec::with_capacity(96);
        out.push(b'{');
        Payload { out }
    }

    fn key(&mut self, key: &str) {
        if self.out.len() > 1 {
            self.out.push(b',');
        }
        write_str(&mut self.out, key);
        self.out.push(b':');
    }

    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        write_str(&mut self.out, value);
        self
    }

    pub fn int(&mut self, key: &str, value: i64) -> &mut Self {
        self.key(key);
        self.out
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        self
    }

    /// Adds a value that is already canonical JSON.
    pub fn raw(&mut self, key: &str, canonical: &str) -> &mut Self {
        self.key(key);
        self.out.extend_from_slice(canonical.as_bytes());
        self
    }

    pub fn finish(&mut self) -> Box<str> {
        self.out.push(b'}');
        let out = std::mem::take(&mut self.out);
        String::from_utf8(out)
            .expect("canonical JSON is ASCII")
            .into_boxed_str()
    }
}
