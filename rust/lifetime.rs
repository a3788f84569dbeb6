//! Session lifetimes: idle timeout, maximum lifetime and heartbeats. A
//! session past any of them is ended (`session.ended`, reason `expired` or
//! `heartbeat_missed`) the next time it is used or swept.

use uuid::Uuid;

use crate::error::{CoreError, Result};
use crate::runtime::Runtime;
use crate::session::{Session, SessionStatus};
use crate::time::Micros;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lifetime {
    /// End a session with no activity for this long.
    pub idle: Option<Micros>,
    /// End a session this long after it started.
    pub max: Option<Micros>,
    /// `(interval, misses allowed)`: end a session whose last heartbeat is
    /// older than `interval * (misses + 1)`.
    pub heartbeat: Option<(Micros, u32)>,
}

impl Lifetime {
    #[inline]
    pub fn is_set(&self) -> bool {
        self.idle.is_some() || self.max.is_some() || self.heartbeat.is_some()
    }

    /// Why a session is over at `now`, if it is.
    pub fn over(&self, s: &Session, now: Micros) -> Option<&'static str> {
        if self.max.is_some_and(|m| now - s.created_micros > m) {
            return Some("expired");
        }
        if self.idle.is_some_and(|i| now - s.last_activity() > i) {
            return Some("expired");
        }
        if let Some((interval, misses)) = self.heartbeat {
            if now - s.last_heartbeat() > interval * (misses as i64 + 1) {
                return Some("heartbeat_missed");
            }
        }
        None
    }
}

impl Runtime {
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

/// The reason of a session that ended because its lifetime was over.
fn expired_reason(end_reason: Option<&str>) -> Option<&'static str> {
    match end_reason? {
        "expired" => Some("expired"),
        "heartbeat_missed" => Some("heartbeat_missed"),
        _ => None,
    }
}
