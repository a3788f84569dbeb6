//! The runtime's sessions: starting, resuming, finding, listing and
//! ending them, and their lifetimes (idle timeout, maximum lifetime,
//! heartbeats) enforced on use and by a sweep.

use std::sync::Arc;

use uuid::Uuid;

use crate::carp::request::{MAX_AGENT_ID, MAX_GOAL};
use crate::error::{CoreError, Result};
use crate::ids::new_v7;
use crate::runtime::session::{Session, SessionStatus};
use crate::runtime::state::{Runtime, Wait};
use crate::time::Micros;
use crate::trace::chain::{Body, ChainStart, EventSource, Record, SpanRef};
use crate::trace::event::EventType;
use crate::trace::hash::GENESIS_HASH;
use crate::trace::payload::Payload;

impl Runtime {
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

    /// Ends the session if its lifetime is over; then it refuses (410
    /// `SESSION_EXPIRED`, also on every later use).
    pub fn check_lifetime(&self, s: &Session) -> Result<()> {
        if s.status() == SessionStatus::Active {
            if let Some(reason) = self.config().lifetime.over(s, self.now()) {
                let _ = self.end(s, reason);
                return Err(CoreError::SessionExpired(s.session_id.to_string(), reason));
            }
        } else if let Some(reason) = expired_reason(s.end_reason().as_deref()) {
            return Err(CoreError::SessionExpired(s.session_id.to_string(), reason));
        }
        Ok(())
    }

    /// Ends every session whose lifetime is over; returns their ids.
    pub fn expire_sessions(&self) -> Vec<Uuid> {
        let lifetime = self.config().lifetime;
        if !lifetime.is_set() {
            return Vec::new();
        }
        let now = self.now();
        self.sessions(Some(SessionStatus::Active))
            .into_iter()
            .filter_map(|s| {
                let reason = lifetime.over(&s, now)?;
                self.end(&s, reason).ok().map(|_| s.session_id)
            })
            .collect()
    }

    /// Records that the session's agent is alive.
    pub fn heartbeat(&self, id: &Uuid) -> Result<()> {
        let s = self.session(id)?;
        self.check_lifetime(&s)?;
        if s.status() != SessionStatus::Active {
            return Err(CoreError::SessionEnded(id.to_string()));
        }
        s.beat(self.now());
        Ok(())
    }
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
    // A NUL is kept by no text column of a store (PostgreSQL refuses it).
    if value.contains('\0') {
        return Err(CoreError::invalid(
            "INVALID_REQUEST",
            path,
            "must not contain the NUL character",
        ));
    }
    Ok(())
}

/// A record that only (re)opens a chain.
struct NoEvents;

impl EventSource for NoEvents {
    fn count(&self) -> usize {
        0
    }
    fn render(&self, _emit: &mut dyn FnMut(EventType, Box<str>)) {}
}

/// The reason of a session that ended because its lifetime was over.
fn expired_reason(end_reason: Option<&str>) -> Option<&'static str> {
    match end_reason? {
        "expired" => Some("expired"),
        "heartbeat_missed" => Some("heartbeat_missed"),
        _ => None,
    }
}
