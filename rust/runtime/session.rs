//! Sessions: who acts, for what goal, on which chain; and the gate that
//! keeps an ended session from accepting anything more.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use uuid::Uuid;

use crate::carp::execute::ExecuteResponse;
use crate::error::{CoreError, Result};
use crate::ids::IdSet;
use crate::time::Micros;

const ENDED: u64 = 1 << 63;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    Active,
    Ended,
}

impl SessionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Active => "active",
            SessionStatus::Ended => "ended",
        }
    }
}

#[derive(Debug)]
pub struct Session {
    pub session_id: Uuid,
    pub trace_id: Uuid,
    pub root_span: Uuid,
    pub agent_id: String,
    pub goal: String,
    pub parent_session_id: Option<Uuid>,
    pub created_micros: Micros,
    /// High bit: ended; low bits: records being pushed right now.
    gate: AtomicU64,
    ended_micros: AtomicI64,
    end_reason: Mutex<Option<String>>,
    /// Last time anything was recorded for it.
    last_activity: AtomicI64,
    /// Last heartbeat (its creation until the first one).
    last_heartbeat: AtomicI64,
    /// Request ids received in this session (a repeat is a duplicate).
    request_ids: Mutex<IdSet>,
    /// Idempotency keys: running, or done with their first response.
    idempotency: Mutex<HashMap<String, Idem>>,
}

#[derive(Debug, Clone)]
enum Idem {
    Running,
    Done(String, Arc<ExecuteResponse>),
}

/// What an idempotency key says about a new execution.
pub enum IdemClaim {
    /// First use: go ahead (and `finish_key` or `drop_key` later).
    Claimed,
    /// Same key, same parameters: the first response.
    Replay(Arc<ExecuteResponse>),
    /// Same key with another action or other parameters, or the first is
    /// still running.
    Conflict,
}

impl Session {
    pub fn new(
        session_id: Uuid,
        trace_id: Uuid,
        root_span: Uuid,
        agent_id: String,
        goal: String,
        parent_session_id: Option<Uuid>,
        created_micros: Micros,
    ) -> Self {
        Session {
            session_id,
            trace_id,
            root_span,
            agent_id,
            goal,
            parent_session_id,
            created_micros,
            gate: AtomicU64::new(0),
            ended_micros: AtomicI64::new(0),
            end_reason: Mutex::new(None),
            last_activity: AtomicI64::new(created_micros),
            last_heartbeat: AtomicI64::new(created_micros),
            request_ids: Mutex::new(IdSet::default()),
            idempotency: Mutex::new(HashMap::new()),
        }
    }

    pub fn status(&self) -> SessionStatus {
        if self.gate.load(Ordering::SeqCst) & ENDED != 0 {
            SessionStatus::Ended
        } else {
            SessionStatus::Active
        }
    }

    pub fn ended_micros(&self) -> Option<Micros> {
        (self.status() == SessionStatus::Ended).then(|| self.ended_micros.load(Ordering::SeqCst))
    }

    pub fn end_reason(&self) -> Option<String> {
        self.end_reason.lock().clone()
    }

    #[inline]
    pub fn touch(&self, now: Micros) {
        self.last_activity.store(now, Ordering::Relaxed);
    }

    pub fn beat(&self, now: Micros) {
        self.last_heartbeat.store(now, Ordering::Relaxed);
        self.touch(now);
    }

    pub fn last_activity(&self) -> Micros {
        self.last_activity.load(Ordering::Relaxed)
    }

    pub fn last_heartbeat(&self) -> Micros {
        self.last_heartbeat.load(Ordering::Relaxed)
    }

    /// Claims a request id; false if this session has seen it already.
    pub fn claim_request(&self, id: Uuid) -> bool {
        self.request_ids.lock().insert(id)
    }

    /// Whether this session has received the request id already.
    pub fn has_request(&self, id: &Uuid) -> bool {
        self.request_ids.lock().contains(id)
    }

    /// Gives a claimed request id back (the request failed).
    pub fn release_request(&self, id: &Uuid) {
        self.request_ids.lock().remove(id);
    }

    /// Claims an idempotency key for a request (`fingerprint`: its action
    /// and parameters hash).
    pub fn claim_key(&self, key: &str, fingerprint: &str) -> IdemClaim {
        let mut map = self.idempotency.lock();
        match map.get(key) {
            None => {
                map.insert(key.to_string(), Idem::Running);
                IdemClaim::Claimed
            }
            Some(Idem::Done(h, resp)) if h == fingerprint => IdemClaim::Replay(Arc::clone(resp)),
            Some(_) => IdemClaim::Conflict,
        }
    }

    /// Keeps the first terminal response of a claimed key.
    pub fn finish_key(&self, key: &str, fingerprint: &str, response: Arc<ExecuteResponse>) {
        self.idempotency.lock().insert(
            key.to_string(),
            Idem::Done(fingerprint.to_string(), response),
        );
    }

    /// Frees a claimed key whose execution gave no terminal answer.
    pub fn drop_key(&self, key: &str) {
        let mut map = self.idempotency.lock();
        if matches!(map.get(key), Some(Idem::Running)) {
            map.remove(key);
        }
    }

    /// Runs `f` while the session is held open; an ended session refuses.
    #[inline]
    pub fn while_open<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let prior = self.gate.fetch_add(1, Ordering::SeqCst);
        let out = if prior & ENDED != 0 {
            Err(CoreError::SessionEnded(self.session_id.to_string()))
        } else {
            f()
        };
        self.gate.fetch_sub(1, Ordering::SeqCst);
        out
    }

    /// Marks the session ended (once) and waits for records in flight.
    /// Returns false if it had already ended.
    pub fn close_gate(&self, now: Micros, reason: &str) -> bool {
        let prior = self.gate.fetch_or(ENDED, Ordering::SeqCst);
        if prior & ENDED != 0 {
            return false;
        }
        self.ended_micros.store(now, Ordering::SeqCst);
        *self.end_reason.lock() = Some(reason.to_string());
        while self.gate.load(Ordering::SeqCst) & !ENDED != 0 {
            std::thread::yield_now();
        }
        true
    }
}
