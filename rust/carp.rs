//! CARP operations of the runtime: atlases and resolve (execute and
//! validate build on the same request checks).

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use uuid::Uuid;

use crate::atlas::Atlas;
use crate::atlas_load::read_manifest;
use crate::chain::{Body, Record, SpanRef};
use crate::error::{CoreError, Fault, Result};
use crate::ids::new_v7;
use crate::registry::Claims;
use crate::request::{parse_request, session_hint, CarpRequest, Operation};
use crate::resolution::Resolution;
use crate::resolve::{resolve, ResolveInput};
use crate::resolve_events::ResolveTrace;
use crate::runtime::{Payload, Runtime, Wait};
use crate::session::{Session, SessionStatus};
use crate::time::Micros;

impl Runtime {
    /// Loads an atlas from a manifest file or directory.
    pub fn load_atlas_path(&self, path: &Path, replace: bool) -> Result<Arc<Atlas>> {
        let (manifest, base) = read_manifest(path)?;
        self.build_and_load(manifest, Some(&base), replace)
    }

    /// Builds an atlas; if its manifest has faults, adds those it has
    /// against the loaded atlases too, so every fault is reported at once.
    fn build_and_load(
        &self,
        manifest: Value,
        base_dir: Option<&Path>,
        replace: bool,
    ) -> Result<Arc<Atlas>> {
        let manifest = Arc::new(manifest);
        match Atlas::build(Arc::clone(&manifest), base_dir) {
            Ok(atlas) => self.registry.load(atlas, replace),
            Err(CoreError::AtlasInvalid(mut faults)) => {
                for f in self.registry.claim_faults(&Claims::of(&manifest)) {
                    if !faults.contains(&f) {
                        faults.push(f);
                    }
                }
                Err(CoreError::AtlasInvalid(faults))
            }
            Err(e) => Err(e),
        }
    }

    /// Loads an atlas given as a parsed manifest (files relative to `base_dir`).
    pub fn load_atlas_value(
        &self,
        manifest: Value,
        base_dir: Option<&Path>,
        replace: bool,
    ) -> Result<Arc<Atlas>> {
        self.build_and_load(manifest, base_dir, replace)
    }

    pub fn unload_atlas(&self, atlas_id: &str) -> Result<Arc<Atlas>> {
        self.registry.unload(atlas_id)
    }

    /// The loaded atlases as one compiled snapshot.
    pub fn snapshot(&self) -> Arc<crate::registry::Snapshot> {
        self.registry.snapshot()
    }

    pub fn atlases(&self) -> Vec<Arc<Atlas>> {
        self.registry.snapshot().atlases.clone()
    }

    pub fn atlas(&self, atlas_id: &str) -> Result<Arc<Atlas>> {
        self.registry
            .snapshot()
            .get(atlas_id)
            .cloned()
            .ok_or_else(|| CoreError::AtlasNotFound(atlas_id.to_string(), None))
    }

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

    /// Checks §3 rules 2–4 (session, duplicate id, clock skew) and claims
    /// the request id; the caller releases it if the operation fails.
    /// `now` is the runtime clock's reading for this request.
    pub(crate) fn admit(&self, req: &CarpRequest, now: Micros) -> Result<Arc<Session>> {
        let session = self.session(&req.session_id)?;
        self.check_lifetime(&session)?;
        if session.status() != SessionStatus::Active {
            return Err(CoreError::SessionEnded(req.session_id.to_string()));
        }
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
        };
        let resolution = match resolve(&input, req) {
            Ok(r) => Arc::new(r),
            Err(e) => {
                session.release_request(&req.request_id);
                return Err(e);
            }
        };
        self.resolutions.insert(Arc::clone(&resolution), now);
        if let Some(approval_id) = resolution.approval_id {
            self.approvals.open(
                approval_id,
                session.session_id,
                resolution.resolution_id,
                resolution.expires_at,
                now,
            );
        }
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
