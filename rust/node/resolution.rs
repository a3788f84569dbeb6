//! `NativeResolution`: a handle on a core resolution. Its ids and decision
//! are read directly; the protocol's JSON is built only when asked for
//! (`toJson`), as Python's `Resolution` does.

use std::sync::Arc;

use napi_derive::napi;

use crate::carp::resolution::Resolution;
use crate::carp::resolution_json::to_value;
use crate::time::format_timestamp;

#[napi]
pub struct NativeResolution(pub(super) Arc<Resolution>);

#[napi]
impl NativeResolution {
    #[napi(getter)]
    pub fn resolution_id(&self) -> String {
        self.0.resolution_id.to_string()
    }

    #[napi(getter)]
    pub fn request_id(&self) -> String {
        self.0.request_id.to_string()
    }

    #[napi(getter)]
    pub fn session_id(&self) -> String {
        self.0.session_id.to_string()
    }

    #[napi(getter)]
    pub fn decision_type(&self) -> &'static str {
        self.0.decision.as_str()
    }

    #[napi(getter)]
    pub fn approval_id(&self) -> Option<String> {
        self.0.approval_id.map(|a| a.to_string())
    }

    #[napi(getter)]
    pub fn expires_at(&self) -> String {
        format_timestamp(self.0.expires_at)
    }

    /// Ids of the allowed actions (including those needing approval), in order.
    #[napi]
    pub fn allowed_action_ids(&self) -> Vec<String> {
        let r = &self.0;
        r.allowed()
            .map(|e| r.action(e).action_id.to_string())
            .collect()
    }

    /// Ids of the denied actions, in order.
    #[napi]
    pub fn denied_action_ids(&self) -> Vec<String> {
        let r = &self.0;
        r.denied()
            .map(|e| r.action(e).action_id.to_string())
            .collect()
    }

    /// True if the action may be executed under this resolution (perhaps after approval).
    #[napi]
    pub fn is_allowed(&self, action_id: String) -> bool {
        self.0.is_allowed(&action_id)
    }

    /// The resolution as the protocol's JSON text.
    #[napi]
    pub fn to_json(&self) -> String {
        to_value(&self.0).to_string()
    }
}

/// A resolver bound to one session, for agents that resolve in a loop:
/// no request document, the least work per call (Python's `prepare`).
#[napi]
pub struct NativePrepared {
    pub(super) rt: Arc<crate::runtime::state::Runtime>,
    pub(super) session: Arc<crate::runtime::session::Session>,
}

#[napi]
impl NativePrepared {
    #[napi(getter)]
    pub fn session_id(&self) -> String {
        self.session.session_id.to_string()
    }

    /// Resolves a goal for this session's agent.
    #[napi]
    pub fn resolve(
        &self,
        goal: String,
        risk_tier: Option<String>,
        atlas_ids: Option<Vec<String>>,
        required_capabilities: Option<Vec<String>>,
        context_hints: Option<Vec<String>>,
    ) -> napi::Result<NativeResolution> {
        use super::errors::IntoJsResult;
        let now = self.rt.now();
        let req = crate::carp::request::CarpRequest::for_resolve(
            crate::ids::new_v7(now),
            now,
            self.session.session_id,
            &self.session.agent_id,
            &goal,
            risk_tier.as_deref(),
            atlas_ids,
            required_capabilities,
            context_hints,
        )
        .js()?;
        let rt = &self.rt;
        super::runtime::durable(rt, || {
            rt.resolve_request(&req, &crate::runtime::state::Direct)
                .map(NativeResolution)
                .js()
        })
    }
}
