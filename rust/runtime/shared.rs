//! A runtime that shares its state with other runtimes through one store
//! (PostgreSQL, several `cra serve` replicas): limits counted there,
//! approvals decided there, and resolutions kept there, so that an execute
//! may name a resolution another runtime made.

use std::sync::Arc;

use uuid::Uuid;

use crate::carp::approvals::shared::SharedApprovals;
use crate::carp::execute::ExecuteResponse;
use crate::carp::limits::SharedCounters;
use crate::carp::resolution::Resolution;
use crate::carp::resolution_doc::SharedResolutions;
use crate::carp::shared_keys::{response_from_json, KeyClaim, SharedKeys};
use crate::error::{CoreError, Result};
use crate::runtime::session::{IdemClaim, Session};
use crate::runtime::state::Runtime;
use crate::time::Micros;

/// What a shared store does for a runtime.
pub struct SharedState {
    pub limits: Arc<dyn SharedCounters>,
    pub resolutions: Arc<dyn SharedResolutions>,
    pub approvals: Arc<dyn SharedApprovals>,
    pub keys: Arc<dyn SharedKeys>,
}

impl Runtime {
    /// Shares this runtime's limits, resolutions and approvals through a
    /// store from now on (once: a second call is refused).
    pub fn share_state(&self, state: SharedState) -> Result<()> {
        let shared = self.limits.share(state.limits)
            && self.shared_resolutions.set(state.resolutions).is_ok()
            && self.approvals.share(state.approvals)
            && self.shared_keys.set(state.keys).is_ok();
        if !shared {
            return Err(CoreError::invalid(
                "ALREADY_SHARED",
                "/store",
                "this runtime already shares its state with a store",
            ));
        }
        Ok(())
    }

    /// Closes here a session another runtime ended (and recorded as
    /// ended): it refuses from now on. Records nothing. False if it was
    /// closed here already.
    pub fn close_ended_elsewhere(&self, id: &Uuid) -> Result<bool> {
        let session = self.session(id)?;
        Ok(session.close_gate(self.now(), "ended on another replica"))
    }

    /// Has the shared store keep a resolution this runtime just made.
    pub(crate) fn keep_shared(&self, r: &Arc<Resolution>) {
        if let Some(store) = self.shared_resolutions.get() {
            store.keep(r);
        }
    }

    /// A resolution of `session` another runtime made and the shared
    /// store keeps, made again here and kept for the executes to come.
    pub(crate) fn shared_resolution(
        &self,
        session: &Session,
        id: &Uuid,
        now: Micros,
    ) -> Result<Option<Arc<Resolution>>> {
        let Some(store) = self.shared_resolutions.get() else {
            return Ok(None);
        };
        let Some(doc) = store.find(id)? else {
            return Ok(None);
        };
        if doc.session_id != session.session_id {
            return Ok(None);
        }
        if doc.expires_at <= now {
            return Err(CoreError::ResolutionExpired(id.to_string()));
        }
        let r = Arc::new(doc.remake(self.registry.snapshot(), session.trace_id)?);
        // Kept here too; if this runtime's bounds refuse it, it is still
        // used for this execute.
        let _ = self.resolutions.insert(Arc::clone(&r), now);
        Ok(Some(r))
    }

    /// Claims an idempotency key: in the session here, then (if this
    /// runtime shares its state) in the store, where another runtime may
    /// hold it running or done.
    pub(crate) fn claim_key(&self, session: &Session, key: &str, fp: &str) -> Result<IdemClaim> {
        let here = session.claim_key(key, fp);
        let (IdemClaim::Claimed, Some(store)) = (&here, self.shared_keys.get()) else {
            return Ok(here);
        };
        let claimed = store.claim(&session.session_id, key, fp);
        if !matches!(claimed, Ok(KeyClaim::Claimed)) {
            session.drop_key(key);
        }
        Ok(match claimed? {
            KeyClaim::Claimed => IdemClaim::Claimed,
            KeyClaim::Running => IdemClaim::Conflict,
            KeyClaim::Done(first, _) if first != fp => IdemClaim::Conflict,
            KeyClaim::Done(_, text) => match response_from_json(&text) {
                Some(r) => IdemClaim::Replay(Arc::new(r)),
                None => {
                    return Err(CoreError::TraceUnavailable(format!(
                        "the stored answer of idempotency key {key:?} cannot be read"
                    )))
                }
            },
        })
    }

    /// Keeps a claimed key's terminal answer, here and in the store. If
    /// the store fails, the key stays running there: a retry through
    /// another runtime is refused (`IDEMPOTENCY_CONFLICT`), never run twice.
    pub(crate) fn finish_key(
        &self,
        session: &Session,
        key: &str,
        fp: &str,
        response: Arc<ExecuteResponse>,
    ) {
        let text = self
            .shared_keys
            .get()
            .map(|store| (store, response.to_value().to_string()));
        session.finish_key(key, fp, response);
        if let Some((store, text)) = text {
            let _ = store.finish(&session.session_id, key, &text);
        }
    }

    /// Frees a claimed key whose execution gave no terminal answer (if the
    /// store fails, the key stays running there, as above).
    pub(crate) fn drop_key(&self, session: &Session, key: &str) {
        session.drop_key(key);
        if let Some(store) = self.shared_keys.get() {
            let _ = store.drop_key(&session.session_id, key);
        }
    }
}
