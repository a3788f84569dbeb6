//! The resolve operation on the runtime: a request admitted,
//! resolved against the loaded atlases, its resolution kept for execute
//! (and its approval opened), and its events pushed as one record.

use std::sync::Arc;

use serde_json::Value;

use crate::carp::limits::take_shared_fault;
use crate::carp::request::{parse_request, session_hint, CarpRequest, Operation};
use crate::carp::resolution::Resolution;
use crate::carp::resolve::{resolve, ResolveInput};
use crate::carp::resolve_events::ResolveTrace;
use crate::error::{CoreError, Fault, Result};
use crate::ids::new_v7;
use crate::runtime::state::{Runtime, Wait};
use crate::trace::chain::{Body, Record, SpanRef};

impl Runtime {
    /// Resolves a CARP request given as JSON.
    pub fn resolve_value(&self, v: &Value, wait: &impl Wait) -> Result<Arc<Resolution>> {
        match parse_request(v) {
            Ok(req) => self.resolve_parsed(&req, wait),
            Err(e) => self.with_error_event(session_hint(v), wait, || Err(e)),
        }
    }

    /// Resolves a request parsed and checked against the schema: the
    /// operation must be `resolve`; a failure is an `error.occurred` in the
    /// request's session.
    pub fn resolve_parsed(&self, req: &CarpRequest, wait: &impl Wait) -> Result<Arc<Resolution>> {
        self.with_error_event(Some(req.session_id), wait, || {
            if req.operation != Operation::Resolve {
                return Err(CoreError::InvalidRequest(vec![Fault::new(
                    "/operation",
                    format!(
                        "resolve takes operation \"resolve\", not {:?}",
                        req.operation.as_str()
                    ),
                )]));
            }
            self.resolve_request(req, wait)
        })
    }

    /// Resolves a parsed request (no `error.occurred` on failure).
    pub fn resolve_request(&self, req: &CarpRequest, wait: &impl Wait) -> Result<Arc<Resolution>> {
        let now = self.now();
        let session = self.admit(req, now)?;
        let input = ResolveInput {
            snapshot: self.registry.snapshot(),
            limits: &self.limits,
            now,
            trace_id: session.trace_id,
            max_candidate_actions: self.registry.limits().max_candidate_actions,
        };
        let shared = self.limits.is_shared();
        if shared {
            take_shared_fault();
        }
        let mut resolved = resolve(&input, req);
        if let Some(fault) = shared.then(take_shared_fault).flatten() {
            resolved = Err(CoreError::TraceUnavailable(format!(
                "the shared limits cannot be read: {fault}"
            )));
        }
        let resolution = match resolved {
            Ok(r) => Arc::new(r),
            Err(e) => {
                session.release_request(&req.request_id);
                return Err(e);
            }
        };
        // Both bounds are per session (TOO_MANY_PENDING past them): the
        // approval first, then the resolution, which takes it back if full.
        let kept = match resolution.approval_id {
            Some(approval_id) => self
                .approvals
                .open(
                    approval_id,
                    session.session_id,
                    resolution.resolution_id,
                    resolution.expires_at,
                    now,
                )
                .and_then(|()| {
                    self.resolutions
                        .insert(Arc::clone(&resolution), now)
                        .inspect_err(|_| self.approvals.discard(&approval_id))
                }),
            None => self.resolutions.insert(Arc::clone(&resolution), now),
        };
        if let Err(e) = kept {
            session.release_request(&req.request_id);
            return Err(e);
        }
        self.keep_shared(&resolution);
        let rec = Record {
            session_id: session.session_id,
            span: SpanRef::Child(new_v7(now)),
            micros: now,
            body: Body::Many(Arc::new(ResolveTrace(Arc::clone(&resolution)))),
            start: None,
            ends_chain: false,
        };
        self.push(&session, rec, wait)?;
        Ok(resolution)
    }
}
