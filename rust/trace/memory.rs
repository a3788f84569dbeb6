//! The in-memory event store: queryable per session, bounded in events,
//! evicting the oldest ended sessions first; and the verification of a
//! chain's events as held in memory.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use uuid::Uuid;

use crate::error::Result;
use crate::ids::{IdMap, IdSet};
use crate::trace::event::TraceEvent;
use crate::trace::sink::{SealedBatch, Sink};
use crate::trace::verify::{ChainVerification, ChainVerifier};

pub const DEFAULT_MEMORY_LIMIT: usize = 1_000_000;

#[derive(Default)]
struct Stored {
    events: Vec<Arc<TraceEvent>>,
    ended: bool,
    /// Set when the oldest events of an open session were evicted: where
    /// the kept part starts (sequence, and the hash it links to).
    anchor: Option<(u64, [u8; 32])>,
}

/// How many evicted session ids are remembered (to say "evicted", not "empty").
const EVICTED_IDS_KEPT: usize = 100_000;

#[derive(Default)]
struct Inner {
    sessions: IdMap<Stored>,
    /// Sessions in the order they were first stored.
    order: VecDeque<Uuid>,
    total: usize,
    evicted_ids: IdSet,
    evicted_order: VecDeque<Uuid>,
}

pub struct MemoryStore {
    limit: usize,
    inner: Mutex<Inner>,
    evicted_events: AtomicU64,
    evicted_sessions: AtomicU64,
}

/// Optional filters of a per-session query.
#[derive(Debug, Default, Clone)]
pub struct EventQuery<'a> {
    pub event_type: Option<&'a str>,
    pub since_sequence: Option<u64>,
    pub limit: Option<usize>,
}

impl MemoryStore {
    pub fn new(limit: usize) -> Self {
        MemoryStore {
            limit: limit.max(1),
            inner: Mutex::new(Inner::default()),
            evicted_events: AtomicU64::new(0),
            evicted_sessions: AtomicU64::new(0),
        }
    }

    pub fn append(&self, batch: &SealedBatch) {
        let mut inner = self.inner.lock();
        for e in batch {
            let inner = &mut *inner;
            let stored = inner.sessions.entry(e.session_id).or_insert_with(|| {
                inner.order.push_back(e.session_id);
                Stored::default()
            });
            if e.event_type == "session.ended" {
                stored.ended = true;
            }
            stored.events.push(Arc::clone(e));
            inner.total += 1;
        }
        if inner.total > self.limit {
            self.evict(&mut inner);
        }
    }

    /// Drops whole sessions until under the limit: ended ones oldest first,
    /// then (only if still over) the oldest open ones.
    fn evict(&self, inner: &mut Inner) {
        // Ended sessions go whole, oldest first.
        let mut i = 0;
        while inner.total > self.limit && i < inner.order.len() {
            let id = inner.order[i];
            if !inner.sessions.get(&id).is_none_or(|s| s.ended) {
                i += 1;
                continue;
            }
            inner.order.remove(i);
            if let Some(s) = inner.sessions.remove(&id) {
                inner.total -= s.events.len();
                self.evicted_events
                    .fetch_add(s.events.len() as u64, Ordering::Relaxed);
                self.evicted_sessions.fetch_add(1, Ordering::Relaxed);
                inner.evicted_ids.insert(id);
                inner.evicted_order.push_back(id);
                if inner.evicted_order.len() > EVICTED_IDS_KEPT {
                    if let Some(old) = inner.evicted_order.pop_front() {
                        inner.evicted_ids.remove(&old);
                    }
                }
            }
        }
        // Then the oldest part of open sessions, oldest session first; the
        // kept part is anchored so that it still verifies.
        let mut i = 0;
        while inner.total > self.limit && i < inner.order.len() {
            let id = inner.order[i];
            i += 1;
            let over = inner.total - self.limit;
            let Some(s) = inner.sessions.get_mut(&id) else {
                continue;
            };
            let keep_from = over
                .max(s.events.len() / 2)
                .min(s.events.len().saturating_sub(1));
            if keep_from == 0 {
                continue;
            }
            s.events.drain(..keep_from);
            if let Some(first) = s.events.first() {
                s.anchor = Some((first.sequence, first.previous_event_hash));
            }
            inner.total -= keep_from;
            self.evicted_events
                .fetch_add(keep_from as u64, Ordering::Relaxed);
        }
    }

    /// Whether a session's events were evicted whole, and where its kept
    /// part starts if only its oldest events were.
    pub fn eviction(&self, session: &Uuid) -> (bool, Option<(u64, [u8; 32])>) {
        let inner = self.inner.lock();
        let anchor = inner.sessions.get(session).and_then(|s| s.anchor);
        (inner.evicted_ids.contains(session), anchor)
    }

    pub fn events(&self, session: &Uuid, q: &EventQuery<'_>) -> Vec<Arc<TraceEvent>> {
        let inner = self.inner.lock();
        let Some(s) = inner.sessions.get(session) else {
            return Vec::new();
        };
        let start = match q.since_sequence {
            Some(seq) => s.events.partition_point(|e| e.sequence < seq),
            None => 0,
        };
        s.events[start..]
            .iter()
            .filter(|e| q.event_type.is_none_or(|t| e.event_type == t))
            .take(q.limit.unwrap_or(usize::MAX))
            .cloned()
            .collect()
    }

    /// Every stored event, session by session in the order sessions began.
    pub fn all_events(&self) -> Vec<Arc<TraceEvent>> {
        let inner = self.inner.lock();
        inner
            .order
            .iter()
            .filter_map(|id| inner.sessions.get(id))
            .flat_map(|s| s.events.iter().cloned())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.inner.lock().total
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn evicted(&self) -> (u64, u64) {
        (
            self.evicted_events.load(Ordering::Relaxed),
            self.evicted_sessions.load(Ordering::Relaxed),
        )
    }
}

/// The flush thread's handle on a shared [`MemoryStore`].
pub struct MemorySink(pub Arc<MemoryStore>);

impl Sink for MemorySink {
    fn write_batch(&mut self, events: &SealedBatch) -> Result<()> {
        self.0.append(events);
        Ok(())
    }
}

/// Verifies events of one chain held in memory.
pub fn verify_events(events: &[Arc<TraceEvent>]) -> ChainVerification {
    let mut v = ChainVerifier::new();
    for e in events {
        e.with_text(|text| v.push(text, None));
    }
    v.finish()
}
