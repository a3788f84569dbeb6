//! The `Runtime` itself: its configuration, clock, recorder and sinks,
//! in-memory store, session table and the CARP state (registry, limits,
//! resolutions, approvals); recording (`record_for`, `push`), reading and
//! verifying what is in memory, flush, close and fork. Every other
//! `impl Runtime` is in a file of its own in `runtime/`.
//! Every operation that can wait takes a [`Wait`] so the Python glue can
//! release the GIL around the waiting part only.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use parking_lot::RwLock;
use uuid::Uuid;

use crate::atlas::registry::Registry;
use crate::carp::approvals::Approvals;
use crate::carp::limits::Limits;
use crate::carp::resolution_doc::SharedResolutions;
use crate::carp::resolution_store::{ResolutionStore, DEFAULT_MAX_RESOLUTIONS};
use crate::carp::shared_keys::SharedKeys;
use crate::error::{CoreError, Result};
use crate::ids::IdMap;
use crate::runtime::lifetime::Lifetime;
use crate::runtime::session::Session;
use crate::time::{Micros, SharedClock, SystemClock};
use crate::trace::chain::{Body, Record, SpanRef};
use crate::trace::event::{EventType, TraceEvent};
use crate::trace::hash::{to_hex, HashAlgorithm};
use crate::trace::jsonl::JsonlSinkFactory;
use crate::trace::memory::{EventQuery, MemorySink, MemoryStore, DEFAULT_MEMORY_LIMIT};
use crate::trace::recorder::{Pushed, Recorder, RecorderConfig, RecorderStats};
use crate::trace::recorder_state::Commit;
use crate::trace::signing::CheckpointKey;
use crate::trace::sink::{Sink, SinkFactory};
use crate::trace::verify::{ChainVerification, ChainVerifier};
use crate::trace::verify_signed::{SignatureChecker, SignatureReport};

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

/// When an operation's events count as kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// An operation returns once its events are queued; the flush thread
    /// writes them soon after (`flush()` waits for that).
    #[default]
    Async,
    /// An operation returns only after its events are written to every
    /// sink (one SQLite transaction, shared by concurrent callers).
    Sync,
}

impl Durability {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "async" => Ok(Durability::Async),
            "sync" => Ok(Durability::Sync),
            _ => Err(CoreError::invalid(
                "INVALID_OPTION",
                "/durability",
                format!("unknown durability {name:?} (use \"async\" or \"sync\")"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Async => "async",
            Durability::Sync => "sync",
        }
    }
}

/// How full the queue may be (percent) before new work is refused as
/// `TRACE_UNAVAILABLE` by [`Runtime::check_available`].
pub const QUEUE_REFUSE_PERCENT: u64 = 90;

#[derive(Clone)]
pub struct RuntimeConfig {
    pub recorder: RecorderConfig,
    pub memory_limit: usize,
    pub trace_file: Option<PathBuf>,
    /// Largest accepted distance between a request's timestamp and the
    /// clock, in microseconds; `None` disables the check.
    pub clock_skew: Option<Micros>,
    pub max_resolutions: usize,
    pub lifetime: Lifetime,
    pub durability: Durability,
    /// The key of redaction markers and whether execute answers show an
    /// executor's exception text unredacted (`carp/redact.rs`).
    pub redaction: crate::carp::redact::Redaction,
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
            lifetime: Lifetime::default(),
            durability: Durability::Async,
            redaction: crate::carp::redact::Redaction::default(),
        }
    }
}

pub struct Runtime {
    config: RuntimeConfig,
    clock: SharedClock,
    factories: Vec<Arc<dyn SinkFactory>>,
    pub(super) recorder: ArcSwap<Recorder>,
    memory: ArcSwap<MemoryStore>,
    /// Swapped whole in a forked child (a lock held at fork time stays held).
    pub(super) sessions: ArcSwap<SessionTable>,
    pub(crate) registry: Registry,
    pub(crate) limits: Limits,
    pub(crate) resolutions: ResolutionStore,
    pub(crate) approvals: Approvals,
    /// Resolutions kept in a store other runtimes share (`runtime/shared.rs`).
    pub(crate) shared_resolutions: OnceLock<Arc<dyn SharedResolutions>>,
    /// Idempotency keys kept in that store.
    pub(crate) shared_keys: OnceLock<Arc<dyn SharedKeys>>,
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
            shared_resolutions: OnceLock::new(),
            shared_keys: OnceLock::new(),
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

    /// Pushes a commit ticket (see [`Recorder::barrier`]) and returns it.
    pub fn barrier(&self, wait: &impl Wait) -> Result<u64> {
        let recorder = self.recorder.load();
        let (ticket, rec) = recorder.barrier();
        match recorder.try_push(rec)? {
            Pushed::Full(rec) => wait.wait(|| recorder.push_blocking(rec))?,
            Pushed::Queued | Pushed::Dropped => {}
        }
        recorder.wake();
        Ok(ticket)
    }

    /// Waits until `ticket` is committed (`Ok(true)`) or `timeout` passes
    /// (`Ok(false)`); `TRACE_UNAVAILABLE` if the sinks fail first (the
    /// events stay queued and are retried).
    pub fn wait_committed(&self, ticket: u64, timeout: Option<Duration>) -> Result<bool> {
        match self.recorder.load().wait_committed(ticket, timeout) {
            Commit::Committed => Ok(true),
            Commit::TimedOut => Ok(false),
            Commit::Failing(why) => Err(CoreError::TraceUnavailable(format!(
                "the trace store cannot write ({why}); the events stay queued and are retried"
            ))),
        }
    }

    /// The highest committed ticket.
    pub fn committed(&self) -> u64 {
        self.recorder.load().committed()
    }

    /// Why the trace store cannot write, while it cannot.
    pub fn failing(&self) -> Option<String> {
        self.recorder.load().failing()
    }

    /// See [`Recorder::set_notice_fd`] and [`Recorder::want_notice`].
    pub fn set_notice_fd(&self, fd: i32) {
        self.recorder.load().set_notice_fd(fd);
    }

    pub fn want_notice(&self) {
        self.recorder.load().want_notice();
    }

    /// `TRACE_UNAVAILABLE` when the trace cannot take new work: its sinks
    /// are failing or its queue is nearly full.
    pub fn check_available(&self) -> Result<()> {
        match self.recorder.load().unavailable(QUEUE_REFUSE_PERCENT) {
            None => Ok(()),
            Some(why) => Err(CoreError::TraceUnavailable(why)),
        }
    }

    /// Why the trace cannot take new work, if it cannot (for health).
    pub fn unavailable_reason(&self) -> Option<String> {
        self.recorder.load().unavailable(QUEUE_REFUSE_PERCENT)
    }

    /// With `Durability::Sync`: waits until everything this thread pushed
    /// is written. Nothing to do with `Async`.
    #[inline]
    pub fn settle(&self, wait: &impl Wait) -> Result<()> {
        if self.config.durability == Durability::Async {
            return Ok(());
        }
        let ticket = self.barrier(wait)?;
        wait.wait(|| self.wait_committed(ticket, None)).map(|_| ())
    }

    /// With `Durability::Sync`: refuses work the trace cannot keep.
    #[inline]
    pub fn admit_work(&self) -> Result<()> {
        if self.config.durability == Durability::Async {
            return Ok(());
        }
        self.check_available()
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
            Some((seq, prev)) => ChainVerifier::anchored(seq, &to_hex(&prev)),
            None => ChainVerifier::new(),
        };
        for e in &events {
            e.with_text(|text| v.push(text, None));
        }
        Ok(v.finish())
    }

    /// A session's signed checkpoints, checked with `key` over its events
    /// held in memory (see `trace/verify_signed.rs`).
    pub fn verify_signatures(&self, id: &Uuid, key: &CheckpointKey) -> Result<SignatureReport> {
        let memory = self.memory.load();
        if memory.eviction(id).0 {
            return Err(CoreError::invalid(
                "EVENTS_EVICTED",
                "/session_id",
                format!("the events of session {id} were evicted from memory (memory_limit); verify its trace file or store"),
            ));
        }
        let events = memory.events(id, &EventQuery::default());
        let mut checker = SignatureChecker::new(key);
        let sid = id.to_string();
        for e in &events {
            checker.push_hash(&sid, e.sequence, &e.event_type, &e.payload, &e.event_hash);
        }
        Ok(checker.finish())
    }

    /// The hash algorithm of this runtime's chains (also used for
    /// `parameters_hash` and `result_hash`).
    pub fn algorithm(&self) -> HashAlgorithm {
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
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    // The store that assigns sequences and links is written first (see
    // `Sink::write_chained`), then memory, then the others in order.
    let (first, rest): (Vec<_>, Vec<_>) = factories.iter().partition(|f| f.assigns_chain());
    if !first.is_empty() && config.recorder.checkpoints.is_some() {
        // A re-sealed batch would no longer match the tree a checkpoint signed.
        return Err(CoreError::invalid(
            "INVALID_SINKS",
            "/signing_key",
            "signed checkpoints cannot be combined with a store that re-seals chains \
             (PostgreSQL) yet",
        ));
    }
    if first.len() > 1 {
        return Err(CoreError::invalid(
            "INVALID_SINKS",
            "/sinks",
            "only one sink may assign the chains' sequence numbers (one PostgreSQL store)",
        ));
    }
    for f in &first {
        sinks.push(if in_child {
            f.open_in_child()?
        } else {
            f.open()?
        });
    }
    sinks.push(Box::new(MemorySink(Arc::clone(&memory))));
    for f in rest {
        sinks.push(if in_child {
            f.open_in_child()?
        } else {
            f.open()?
        });
    }
    Ok((Recorder::start(config.recorder.clone(), sinks)?, memory))
}
