//! The in-memory event store: queryable per session, bounded in events,
//! evicting the oldest ended sessions first.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use uuid::Uuid;

use crate::error::Result;
use crate::event::TraceEvent;
use crate::sink::{SealedBatch, Sink};

pub const DEFAULT_MEMORY_LIMIT: usize = 1_000_000;

#[derive(Default)]
struct Stored {
    events: Vec<Arc<TraceEvent>>,
    ended: bool,
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<Uuid, Stored>,
    /// Sessions in the order they were first stored.
    order: VecDeque<Uuid>,
    total: usize,
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
        for only_ended in [true, false] {
            let mut i = 0;
            while inner.total > self.limit && i < inner.order.len() {
                let id = inner.order[i];
                let ended = inner.sessions.get(&id).is_none_or(|s| s.ended);
                if only_ended && !ended {
                    i += 1;
                    continue;
                }
                inner.order.remove(i);
                if let Some(s) = inner.sessions.remove(&id) {
                    inner.total -= s.events.len();
                    self.evicted_events
                        .fetch_add(s.events.len() as u64, Ordering::Relaxed);
                    self.evicted_sessions.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
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
