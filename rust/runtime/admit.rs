//! What every CARP request goes through on the runtime: admission (§3
//! rules 2-4: its session, a duplicate id, clock skew) and the
//! `error.occurred` event of a request that failed.

use std::sync::Arc;

use uuid::Uuid;

use crate::carp::request::CarpRequest;
use crate::error::{CoreError, Result};
use crate::runtime::session::{Session, SessionStatus};
use crate::runtime::state::{Runtime, Wait};
use crate::time::Micros;
use crate::trace::chain::SpanRef;
use crate::trace::payload::Payload;

impl Runtime {
    /// Records `error.occurred` for a request that failed, if its session is open.
    pub fn record_error(&self, session: &Session, err: &CoreError, wait: &impl Wait) {
        let mut p = Payload::new();
        p.str("code", err.code()).str("message", &err.to_string());
        let rec = self.record_for(session, "error.occurred".into(), p.finish(), SpanRef::Fresh);
        let _ = self.push(session, rec, wait);
    }

    /// Runs `f` on a request's session and records `error.occurred` if it
    /// fails while the session exists and is open.
    pub(crate) fn with_error_event<T>(
        &self,
        session: Option<Uuid>,
        wait: &impl Wait,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let out = f();
        if let (Err(err), Some(id)) = (&out, session) {
            if let Ok(s) = self.session(&id) {
                if s.status() == SessionStatus::Active {
                    self.record_error(&s, err, wait);
                }
            }
        }
        out
    }

    /// Checks §3 rules 2–4 (session, its agent, duplicate id, clock skew) and claims
    /// the request id; the caller releases it if the operation fails.
    /// `now` is the runtime clock's reading for this request.
    pub(crate) fn admit(&self, req: &CarpRequest, now: Micros) -> Result<Arc<Session>> {
        let session = self.session(&req.session_id)?;
        self.check_lifetime(&session)?;
        if session.status() != SessionStatus::Active {
            return Err(CoreError::SessionEnded(req.session_id.to_string()));
        }
        check_agent(req, &session)?;
        self.check_skew(req, now)?;
        if !session.claim_request(req.request_id) {
            return Err(CoreError::DuplicateRequest(req.request_id.to_string()));
        }
        Ok(session)
    }

    /// §3 rule 3: the request's timestamp is within the clock-skew window.
    pub(crate) fn check_skew(&self, req: &CarpRequest, now: Micros) -> Result<()> {
        if let Some(window) = self.config().clock_skew {
            let skew = (req.timestamp - now).abs();
            if skew > window {
                return Err(CoreError::invalid(
                    "CLOCK_SKEW",
                    "/timestamp",
                    format!(
                        "the timestamp is {:.1} s from the runtime's clock (allowed: {} s)",
                        skew as f64 / 1e6,
                        window / 1_000_000
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The message of `AGENT_MISMATCH`; it names neither id.
pub const AGENT_MISMATCH: &str = "the request's agent_id is not the session's agent";

/// A request speaks for its session's agent only: one session cannot act,
/// or spend an agent-scoped limit, as another agent. A plain comparison,
/// no allocation unless it fails.
#[inline]
pub(crate) fn check_agent(req: &CarpRequest, session: &Session) -> Result<()> {
    if *req.agent_id == *session.agent_id {
        Ok(())
    } else {
        Err(CoreError::invalid(
            "AGENT_MISMATCH",
            "/requester/agent_id",
            AGENT_MISMATCH,
        ))
    }
}
