//! Per-session chain state and sealing: what the flush thread does to turn a
//! caller's record into a numbered, hashed, linked event.

use std::sync::Arc;

use uuid::Uuid;

use crate::ids::new_v7;
use crate::ids::IdMap;
use crate::time::{format_timestamp, Micros, Stamp, StampCache};
use crate::trace::checkpoint::{CheckpointPolicy, Statement, CHECKPOINT_EVENT};
use crate::trace::event::{EventType, TraceEvent};
use crate::trace::hash::{to_hex, HashAlgorithm};
use crate::trace::merkle::Accumulator;
use crate::trace::signing::CheckpointSigner;

/// Which span a record belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanRef {
    /// The session's root span (`parent_span_id` null).
    Root,
    /// A new span of its own under the root, minted when sealed.
    Fresh,
    /// A span minted by the caller under the root (shared by an operation).
    Child(Uuid),
}

/// Where a chain starts: a new session, or one resumed from a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainStart {
    pub trace_id: Uuid,
    pub root_span: Uuid,
    pub next_sequence: u64,
    pub previous_hash: [u8; 32],
}

/// Several events described by one value (a resolution, an execution),
/// rendered on the flush thread so the caller pays for one push only.
pub trait EventSource: Send + Sync {
    /// How many events `render` emits.
    fn count(&self) -> usize;
    /// Emits each event's type and canonical payload, in order.
    fn render(&self, emit: &mut dyn FnMut(EventType, Box<str>));
}

/// The event(s) of a record.
#[derive(Clone)]
pub enum Body {
    One(EventType, Box<str>),
    Many(Arc<dyn EventSource>),
    /// No event: a commit ticket. Everything pushed before it is written
    /// when the flush thread reports the ticket committed.
    Barrier(u64),
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::One(t, p) => write!(f, "One({t}, {p})"),
            Body::Many(src) => write!(f, "Many({} events)", src.count()),
            Body::Barrier(t) => write!(f, "Barrier({t})"),
        }
    }
}

/// What a caller hands to the recorder: compact and not yet hashed.
#[derive(Debug, Clone)]
pub struct Record {
    pub session_id: Uuid,
    pub span: SpanRef,
    pub micros: Micros,
    pub body: Body,
    /// Set on the first record of a chain (boxed: most records have none).
    pub start: Option<Box<ChainStart>>,
    /// Set on the last record of a chain (`session.ended`).
    pub ends_chain: bool,
}

impl Record {
    /// How many events this record becomes.
    #[inline]
    pub fn event_count(&self) -> usize {
        match &self.body {
            Body::One(..) => 1,
            Body::Many(src) => src.count(),
            Body::Barrier(_) => 0,
        }
    }
}

struct ChainState {
    trace_id: Uuid,
    root_span: Uuid,
    next_sequence: u64,
    previous_hash: [u8; 32],
    /// The Merkle tree of the chain's events, when checkpoints are signed.
    tree: Option<Box<Tree>>,
}

/// A chain's events as a Merkle tree, and when it was last checkpointed.
struct Tree {
    leaves: Accumulator,
    first_sequence: u64,
    /// Events since the last checkpoint.
    since: u64,
    last_micros: Micros,
}

/// The key and the policy of signed checkpoints.
pub struct Checkpointing {
    pub signer: CheckpointSigner,
    pub policy: CheckpointPolicy,
}

impl std::fmt::Debug for Checkpointing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpointing")
            .field("key_id", &self.signer.key_id())
            .field("policy", &self.policy)
            .finish()
    }
}

/// The chains of every open session, owned by the flush thread.
pub struct Chains {
    algorithm: HashAlgorithm,
    open: IdMap<ChainState>,
    stamps: StampCache,
    checkpoints: Option<Arc<Checkpointing>>,
}

impl Chains {
    pub fn new(algorithm: HashAlgorithm, checkpoints: Option<Arc<Checkpointing>>) -> Self {
        Chains {
            algorithm,
            open: IdMap::default(),
            stamps: StampCache::default(),
            checkpoints,
        }
    }

    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// Numbers, hashes and links the events of `rec` onto `out`; returns
    /// how many (0 if its session has no chain). With checkpoints on, a
    /// checkpoint follows when the policy's event count is reached, and
    /// always after the last event of a chain.
    pub fn seal(&mut self, rec: Record, out: &mut Vec<Arc<TraceEvent>>) -> usize {
        if let Some(start) = rec.start {
            let tree = self.checkpoints.as_ref().map(|_| {
                Box::new(Tree {
                    leaves: Accumulator::new(),
                    first_sequence: start.next_sequence,
                    since: 0,
                    last_micros: rec.micros,
                })
            });
            self.open.insert(
                rec.session_id,
                ChainState {
                    trace_id: start.trace_id,
                    root_span: start.root_span,
                    next_sequence: start.next_sequence,
                    previous_hash: start.previous_hash,
                    tree,
                },
            );
        }
        let algorithm = self.algorithm;
        let Some(state) = self.open.get_mut(&rec.session_id) else {
            return 0;
        };
        let (span_id, parent_span_id) = match rec.span {
            SpanRef::Root => (state.root_span, None),
            SpanRef::Fresh => (new_v7(rec.micros), Some(state.root_span)),
            SpanRef::Child(id) => (id, Some(state.root_span)),
        };
        let timestamp = self.stamps.stamp(rec.micros);
        let before = out.len();
        let mut emit = |event_type: EventType, payload: Box<str>| {
            seal_one(
                state,
                algorithm,
                rec.session_id,
                rec.micros,
                timestamp,
                (span_id, parent_span_id),
                (event_type, payload),
                out,
            );
        };
        match rec.body {
            Body::One(event_type, payload) => emit(event_type, payload),
            Body::Many(src) => src.render(&mut emit),
            Body::Barrier(_) => {}
        }
        if let Some(cp) = &self.checkpoints {
            let due = state
                .tree
                .as_ref()
                .is_some_and(|t| t.since >= cp.policy.every_events.max(1));
            if due || rec.ends_chain {
                checkpoint(
                    state,
                    algorithm,
                    cp,
                    rec.session_id,
                    rec.micros,
                    &mut self.stamps,
                    rec.ends_chain,
                    out,
                );
            }
        }
        if rec.ends_chain {
            self.open.remove(&rec.session_id);
        }
        out.len() - before
    }

    /// Continues each open chain after the last of its events in `events`
    /// (a batch the store re-sealed onto heads another writer had moved).
    pub fn follow(&mut self, events: &[Arc<TraceEvent>]) {
        for e in events {
            if let Some(state) = self.open.get_mut(&e.session_id) {
                state.next_sequence = e.sequence + 1;
                state.previous_hash = e.event_hash;
            }
        }
    }

    /// Seals a checkpoint into every open chain with events since its last
    /// one: all of them when a `flush()` waits (if the policy says so) or
    /// the recorder closes, else those whose last checkpoint is older than
    /// the policy's interval. Returns how many.
    pub fn checkpoint_open(
        &mut self,
        now: Micros,
        flushing: bool,
        closing: bool,
        out: &mut Vec<Arc<TraceEvent>>,
    ) -> usize {
        let Some(cp) = self.checkpoints.clone() else {
            return 0;
        };
        let all = closing || (flushing && cp.policy.at_flush);
        let every = cp.policy.every.map(|d| d.as_micros() as Micros);
        let algorithm = self.algorithm;
        let mut n = 0;
        for (sid, state) in self.open.iter_mut() {
            let Some(tree) = &state.tree else { continue };
            let old = every.is_some_and(|e| now - tree.last_micros >= e);
            if tree.since > 0 && (all || old) {
                checkpoint(
                    state,
                    algorithm,
                    &cp,
                    *sid,
                    now,
                    &mut self.stamps,
                    false,
                    out,
                );
                n += 1;
            }
        }
        n
    }

    /// True if checkpoints are sealed.
    pub fn signs(&self) -> bool {
        self.checkpoints.is_some()
    }
}

/// Seals one event onto a chain (and its tree).
#[allow(clippy::too_many_arguments)]
fn seal_one(
    state: &mut ChainState,
    algorithm: HashAlgorithm,
    session_id: Uuid,
    micros: Micros,
    timestamp: Stamp,
    (span_id, parent_span_id): (Uuid, Option<Uuid>),
    (event_type, payload): (EventType, Box<str>),
    out: &mut Vec<Arc<TraceEvent>>,
) {
    let mut event = TraceEvent {
        event_id: new_v7(micros),
        trace_id: state.trace_id,
        span_id,
        parent_span_id,
        session_id,
        sequence: state.next_sequence,
        timestamp,
        event_type,
        payload,
        event_hash: [0; 32],
        previous_event_hash: state.previous_hash,
    };
    event.event_hash = event.compute_hash(algorithm);
    state.next_sequence += 1;
    state.previous_hash = event.event_hash;
    if let Some(tree) = &mut state.tree {
        tree.leaves.push(&event.event_hash);
        tree.since += 1;
    }
    out.push(Arc::new(event));
}

/// Signs the chain's tree as it stands and seals the checkpoint event
/// (on the root span) after its last event.
#[allow(clippy::too_many_arguments)]
fn checkpoint(
    state: &mut ChainState,
    algorithm: HashAlgorithm,
    cp: &Checkpointing,
    session_id: Uuid,
    micros: Micros,
    stamps: &mut StampCache,
    is_final: bool,
    out: &mut Vec<Arc<TraceEvent>>,
) {
    let Some(tree) = &state.tree else { return };
    let statement = Statement {
        session_id,
        first_sequence: tree.first_sequence,
        tree_size: tree.leaves.size(),
        head_hash: to_hex(&state.previous_hash),
        merkle_root: to_hex(&tree.leaves.root()),
        signed_at: format_timestamp(micros),
        key_id: cp.signer.key_id().to_string(),
        is_final,
    };
    let signature = cp.signer.sign(statement.message().as_bytes());
    let root = (state.root_span, None);
    let timestamp = stamps.stamp(micros);
    let body = (
        EventType::Static(CHECKPOINT_EVENT),
        statement.payload(&signature),
    );
    seal_one(
        state, algorithm, session_id, micros, timestamp, root, body, out,
    );
    if let Some(tree) = &mut state.tree {
        tree.since = 0;
        tree.last_micros = micros;
    }
}
