//! Resolutions kept for execute: bounded in count, expiring with their TTL.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use uuid::Uuid;

use crate::carp::resolution::Resolution;
use crate::ids::IdMap;
use crate::time::Micros;

pub const DEFAULT_MAX_RESOLUTIONS: usize = 100_000;

#[derive(Default)]
struct Inner {
    by_id: IdMap<Arc<Resolution>>,
    order: VecDeque<(Micros, Uuid)>,
}

pub struct ResolutionStore {
    max: usize,
    inner: Mutex<Inner>,
}

/// Why a resolution cannot be used.
pub enum Lookup {
    Found(Arc<Resolution>),
    Expired,
    Missing,
}

impl ResolutionStore {
    pub fn new(max: usize) -> Self {
        ResolutionStore {
            max: max.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    pub fn insert(&self, r: Arc<Resolution>, now: Micros) {
        let mut inner = self.inner.lock();
        // Expired resolutions are kept (so execute can say "expired", 410)
        // until the bound needs their room; the oldest go first.
        let _ = now;
        while inner.order.len() >= self.max {
            if let Some((_, id)) = inner.order.pop_front() {
                inner.by_id.remove(&id);
            }
        }
        inner.order.push_back((r.expires_at, r.resolution_id));
        inner.by_id.insert(r.resolution_id, r);
    }

    pub fn get(&self, id: &Uuid, now: Micros) -> Lookup {
        match self.inner.lock().by_id.get(id) {
            Some(r) if r.expires_at > now => Lookup::Found(Arc::clone(r)),
            Some(_) => Lookup::Expired,
            None => Lookup::Missing,
        }
    }

    pub fn len(&self) -> usize {
        self.inner.lock().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
