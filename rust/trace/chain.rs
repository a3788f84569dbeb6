//! Per-session chain state and sealing: what the flush thread does to turn a
//! caller's record into a numbered, hashed, linked event.

use std::sync::Arc;

use uuid::Uuid;

use crate::ids::new_v7;
use crate::ids::IdMap;
use crate::time::{Micros, StampCache};
use crate::trace::event::{EventType, TraceEvent};
use crate::trace::hash::HashAlgorithm;

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

#[derive(Debug)]
struct ChainState {
    trace_id: Uuid,
    root_span: Uuid,
    next_sequence: u64,
    previous_hash: [u8; 32],
}

/// The chains of every open session, owned by the flush thread.
pub struct Chains {
    algorithm: HashAlgorithm,
    open: IdMap<ChainState>,
    stamps: StampCache,
}

impl Chains {
    pub fn new(algorithm: HashAlgorithm) -> Self {
        Chains {
            algorithm,
            open: IdMap::default(),
            stamps: StampCache::default(),
        }
    }

    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// Numbers, hashes and links the events of `rec` onto `out`; returns
    /// how many (0 if its session has no chain).
    pub fn seal(&mut self, rec: Record, out: &mut Vec<Arc<TraceEvent>>) -> usize {
        if let Some(start) = rec.start {
            self.open.insert(
                rec.session_id,
                ChainState {
                    trace_id: start.trace_id,
                    root_span: start.root_span,
                    next_sequence: start.next_sequence,
                    previous_hash: start.previous_hash,
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
            let mut event = TraceEvent {
                event_id: new_v7(rec.micros),
                trace_id: state.trace_id,
                span_id,
                parent_span_id,
                session_id: rec.session_id,
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
            out.push(Arc::new(event));
        };
        match rec.body {
            Body::One(event_type, payload) => emit(event_type, payload),
            Body::Many(src) => src.render(&mut emit),
            Body::Barrier(_) => {}
        }
        if rec.ends_chain {
            self.open.remove(&rec.session_id);
        }
        out.len() - before
    }
}
