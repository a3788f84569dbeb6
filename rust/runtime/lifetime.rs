//! Session lifetimes: idle timeout, maximum lifetime and heartbeats, and
//! when a session is past them. Such a session is ended (`session.ended`,
//! reason `expired` or `heartbeat_missed`) the next time it is used or
//! swept (`sessions.rs` does that).

use crate::runtime::session::Session;
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
