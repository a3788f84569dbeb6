//! Resolutions kept for execute: bounded per session and in all, expiring
//! with their TTL.
//!
//! The bounds are per session so that one session's volume never costs
//! another session a live resolution:
//! - A session keeps at most [`MAX_RESOLUTIONS_PER_SESSION`] (or the store's
//!   whole bound, if smaller). Beyond it, the session's *own* oldest
//!   resolution without an approval id is dropped. A resolution with an
//!   approval id is never dropped for room (an approval waiting on it would
//!   become unusable); there are at most `approvals::MAX_PENDING_PER_SESSION`
//!   undecided ones per session, and if a session holds nothing else, a
//!   new resolution is refused (`TOO_MANY_PENDING`).
//! - The store as a whole keeps at most `max` (`max_resolutions`), a memory
//!   bound. When it is reached, expired resolutions of every session are
//!   dropped first; then the new resolution's own session gives up its
//!   oldest droppable one; if that frees nothing, the new resolution is
//!   refused (`TOO_MANY_PENDING`) — another session's live resolution is
//!   never dropped.
//!
//! Expired resolutions are otherwise kept (so execute can say "expired",
//! 410) until a bound needs their room.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use uuid::Uuid;

use crate::carp::resolution::Resolution;
use crate::error::{CoreError, Result};
use crate::ids::IdMap;
use crate::time::Micros;

pub const DEFAULT_MAX_RESOLUTIONS: usize = 100_000;

/// Resolutions one session keeps at most; beyond it the session's own
/// oldest (without an approval id) are dropped.
pub const MAX_RESOLUTIONS_PER_SESSION: usize = 10_000;

/// One session's resolutions, oldest first: those without an approval id
/// (droppable for room) and those with one (kept until they expire).
#[derive(Default)]
struct Slot {
    plain: VecDeque<(Micros, Uuid)>,
    gated: VecDeque<(Micros, Uuid)>,
}

impl Slot {
    fn len(&self) -> usize {
        self.plain.len() + self.gated.len()
    }
}

struct Inner {
    by_id: IdMap<Arc<Resolution>>,
    sessions: IdMap<Slot>,
    /// No resolution held expires before this (a lower bound): dropping the
    /// expired ones is skipped while the clock is before it.
    next_expiry: Micros,
}

pub struct ResolutionStore {
    max: usize,
    per_session: usize,
    inner: Mutex<Inner>,
}

/// Why a resolution cannot be used.
pub enum Lookup {
    Found(Arc<Resolution>),
    Expired,
    Missing,
}

impl ResolutionStore {
    /// A store of at most `max` resolutions in all, and at most
    /// [`MAX_RESOLUTIONS_PER_SESSION`] (or `max`, if smaller) per session.
    pub fn new(max: usize) -> Self {
        Self::with_session_bound(max, MAX_RESOLUTIONS_PER_SESSION)
    }

    /// A store with another per-session bound (tests).
    pub fn with_session_bound(max: usize, per_session: usize) -> Self {
        let max = max.max(1);
        ResolutionStore {
            max,
            per_session: per_session.clamp(1, max),
            inner: Mutex::new(Inner {
                by_id: IdMap::default(),
                sessions: IdMap::default(),
                next_expiry: Micros::MAX,
            }),
        }
    }

    /// Keeps a resolution for execute, or refuses it (`TOO_MANY_PENDING`)
    /// when neither bound can make room from its own session.
    pub fn insert(&self, r: Arc<Resolution>, now: Micros) -> Result<()> {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        if inner.by_id.len() >= self.max && now >= inner.next_expiry {
            inner.drop_expired(now);
        }
        let full = inner.by_id.len() >= self.max;
        let slot = inner.sessions.entry(r.session_id).or_default();
        let mut held = slot.len();
        let mut total = inner.by_id.len();
        while held >= self.per_session || total >= self.max {
            let Some((_, old)) = slot.plain.pop_front() else {
                break;
            };
            inner.by_id.remove(&old);
            held -= 1;
            total -= 1;
        }
        if held >= self.per_session || total >= self.max {
            // Expired gated ones of this session are the last room to make.
            slot.gated.retain(|&(expires, id)| {
                expires > now || {
                    inner.by_id.remove(&id);
                    false
                }
            });
            held = slot.len();
            total = inner.by_id.len();
        }
        if held >= self.per_session || total >= self.max {
            if slot.len() == 0 {
                inner.sessions.remove(&r.session_id);
            }
            let message = if full && total >= self.max {
                format!(
                    "the runtime holds as many resolutions as it keeps ({}) and none has expired; decide or let expire some pending approvals first",
                    self.max
                )
            } else {
                format!(
                    "this session holds {held} resolutions that wait for approval (at most {}); decide or let expire some of them first",
                    self.per_session
                )
            };
            return Err(CoreError::invalid(
                "TOO_MANY_PENDING",
                "/requester/session_id",
                message,
            ));
        }
        let entry = (r.expires_at, r.resolution_id);
        if r.approval_id.is_some() {
            slot.gated.push_back(entry);
        } else {
            slot.plain.push_back(entry);
        }
        inner.next_expiry = inner.next_expiry.min(r.expires_at);
        inner.by_id.insert(r.resolution_id, r);
        Ok(())
    }

    /// Forgets a resolution (one whose approval could not be opened).
    pub fn remove(&self, id: &Uuid) {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        let Some(r) = inner.by_id.remove(id) else {
            return;
        };
        if let Some(slot) = inner.sessions.get_mut(&r.session_id) {
            for q in [&mut slot.gated, &mut slot.plain] {
                if let Some(at) = q.iter().rposition(|&(_, x)| x == *id) {
                    q.remove(at);
                }
            }
            if slot.len() == 0 {
                inner.sessions.remove(&r.session_id);
            }
        }
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

impl Inner {
    /// Drops every expired resolution (of every session), and the sessions
    /// left with none. Runs only when the whole bound is reached and
    /// something may have expired.
    fn drop_expired(&mut self, now: Micros) {
        let Inner {
            by_id,
            sessions,
            next_expiry,
        } = self;
        let mut next = Micros::MAX;
        sessions.retain(|_, slot| {
            for q in [&mut slot.plain, &mut slot.gated] {
                q.retain(|&(expires, id)| {
                    if expires > now {
                        next = next.min(expires);
                        true
                    } else {
                        by_id.remove(&id);
                        false
                    }
                });
            }
            slot.len() > 0
        });
        *next_expiry = next;
    }
}

#[cfg(test)]
#[path = "resolution_store_tests.rs"]
mod tests;
