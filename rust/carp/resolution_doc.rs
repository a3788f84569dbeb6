//! A resolution as a document a shared store keeps (PostgreSQL), so that
//! another runtime sharing the store can use it: the request that made
//! it, when, under which atlas versions, its ids, and the actions a limit
//! denied then. Made again from the document, the resolution is the same
//! resolve of the same request against the same atlases at the same time;
//! only the limits' state of that moment is not replayed, so the actions a
//! limit denied are denied again from the document. Under other atlas
//! versions a document is refused: the agent resolves again.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::atlas::policy::RiskTier;
use crate::atlas::registry::{PolicyRef, Snapshot};
use crate::carp::limits::Limits;
use crate::carp::request::{CarpRequest, Operation};
use crate::carp::resolution::{DenyReason, Outcome, Resolution};
use crate::carp::resolve::{decide_again, resolve, ResolveInput};
use crate::error::{CoreError, Result};
use crate::time::Micros;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolutionDoc {
    pub resolution_id: Uuid,
    pub session_id: Uuid,
    pub request_id: Uuid,
    pub agent_id: String,
    pub goal: String,
    pub risk_tier: Option<String>,
    pub context_hints: Option<Vec<String>>,
    pub required_capabilities: Option<Vec<String>>,
    /// The candidate atlases, as resolved.
    pub atlas_ids: Vec<String>,
    /// Every loaded atlas and its version, in load order.
    pub atlases: Vec<(String, String)>,
    pub resolved_at: Micros,
    pub expires_at: Micros,
    pub approval_id: Option<Uuid>,
    /// Actions a rate limit or budget denied at the time.
    pub limited: Vec<Limited>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limited {
    pub action_id: String,
    pub atlas_id: String,
    pub policy_id: String,
    pub budget: bool,
}

/// Every loaded atlas and its version, in load order.
fn versions(snap: &Snapshot) -> Vec<(String, String)> {
    snap.atlases
        .iter()
        .map(|a| (a.atlas_id.to_string(), a.version.to_string()))
        .collect()
}

impl ResolutionDoc {
    pub fn of(r: &Resolution) -> Self {
        let limited = r
            .evaluations
            .iter()
            .filter(|e| matches!(e.deny, Some(DenyReason::RateLimit | DenyReason::Budget)))
            .filter_map(|e| {
                let p = r.snapshot.policy(e.policy?);
                Some(Limited {
                    action_id: r.action(e).action_id.to_string(),
                    atlas_id: p.atlas_id.to_string(),
                    policy_id: p.policy_id.to_string(),
                    budget: e.deny == Some(DenyReason::Budget),
                })
            })
            .collect();
        ResolutionDoc {
            resolution_id: r.resolution_id,
            session_id: r.session_id,
            request_id: r.request_id,
            agent_id: r.agent_id.to_string(),
            goal: r.echo.goal.to_string(),
            risk_tier: r.echo.risk_tier.map(|t| t.as_str().to_string()),
            context_hints: r.echo.context_hints.clone(),
            required_capabilities: r.echo.required_capabilities.clone(),
            atlas_ids: r.echo.atlas_ids.iter().map(|a| a.to_string()).collect(),
            atlases: versions(&r.snapshot),
            resolved_at: r.timestamp,
            expires_at: r.expires_at,
            approval_id: r.approval_id,
            limited,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a resolution document serializes")
    }

    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text)
            .map_err(|e| CoreError::Sink(format!("a stored resolution cannot be read: {e}")))
    }

    fn request(&self) -> CarpRequest {
        CarpRequest {
            request_id: self.request_id,
            timestamp: self.resolved_at,
            operation: Operation::Resolve,
            agent_id: Arc::from(self.agent_id.as_str()),
            session_id: self.session_id,
            parent_session_id: None,
            goal: Arc::from(self.goal.as_str()),
            risk_tier: self.risk_tier.as_deref().and_then(RiskTier::parse),
            context_hints: self.context_hints.clone(),
            required_capabilities: self.required_capabilities.clone(),
            atlas_ids: Some(self.atlas_ids.clone()),
            context: None,
            execution: None,
        }
    }

    /// The resolution again, against `snapshot` (which must hold the same
    /// atlas versions; else `RESOLUTION_EXPIRED`: resolve again).
    pub fn remake(&self, snapshot: Arc<Snapshot>, trace_id: Uuid) -> Result<Resolution> {
        let stale = || CoreError::ResolutionExpired(self.resolution_id.to_string());
        if versions(&snapshot) != self.atlases {
            return Err(stale());
        }
        let limits = Limits::new();
        let input = ResolveInput {
            snapshot: Arc::clone(&snapshot),
            limits: &limits,
            now: self.resolved_at,
            trace_id,
            max_candidate_actions: u64::MAX,
        };
        let mut r = resolve(&input, &self.request()).map_err(|_| stale())?;
        for l in &self.limited {
            let policy = policy_ref(&snapshot, &l.atlas_id, &l.policy_id).ok_or_else(stale)?;
            let Some(at) = r
                .evaluations
                .iter()
                .position(|e| *r.action(e).action_id == *l.action_id)
            else {
                return Err(stale());
            };
            let e = &mut r.evaluations[at];
            e.outcome = Outcome::Deny;
            e.policy = Some(policy);
            e.deny = Some(if l.budget {
                DenyReason::Budget
            } else {
                DenyReason::RateLimit
            });
        }
        decide_again(&mut r);
        r.resolution_id = self.resolution_id;
        r.approval_id = self.approval_id;
        r.timestamp = self.resolved_at;
        r.expires_at = self.expires_at;
        Ok(r)
    }
}

fn policy_ref(snap: &Snapshot, atlas_id: &str, policy_id: &str) -> Option<PolicyRef> {
    let atlas = *snap.index.get(atlas_id)?;
    let policy = snap.atlases[atlas as usize]
        .policies
        .iter()
        .position(|p| &*p.policy_id == policy_id)?;
    Some(PolicyRef {
        atlas,
        policy: policy as u32,
    })
}

/// Resolutions kept by a store several runtimes share.
pub trait SharedResolutions: Send + Sync {
    /// Has the store keep `resolution`'s document, at the latest with the
    /// next events it writes (so before any answer that waits for them).
    fn keep(&self, resolution: &Arc<Resolution>);
    /// A resolution another runtime kept, if any.
    fn find(&self, resolution_id: &Uuid) -> Result<Option<ResolutionDoc>>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::atlas::model::Atlas;
    use crate::atlas::registry::Registry;
    use crate::carp::request::parse_request;
    use serde_json::json;

    fn registry() -> Registry {
        let reg = Registry::new();
        let atlas = json!({
            "atlas_version": "1.0", "atlas_id": "t.doc", "version": "1.2.0",
            "name": "T", "description": "T",
            "actions": [
                {"action_id": "a.read", "name": "R", "description": "R"},
                {"action_id": "a.call", "name": "C", "description": "C"},
                {"action_id": "a.pay", "name": "P", "description": "P"}
            ],
            "policies": [
                {"policy_id": "rl", "type": "rate_limit", "actions": ["a.call"],
                 "parameters": {"max_calls": 1, "window_seconds": 60}},
                {"policy_id": "gate", "type": "require_approval", "actions": ["a.pay"]},
                {"policy_id": "ok", "type": "allow", "actions": ["a.*"]}
            ]
        });
        reg.load(Atlas::build(Arc::new(atlas), None).expect("valid"), false)
            .expect("loads");
        reg
    }

    #[test]
    fn a_resolution_is_made_again_from_its_document() {
        let reg = registry();
        let sid = Uuid::now_v7();
        let req = parse_request(&json!({
            "carp_version": "1.0", "request_id": Uuid::now_v7().to_string(),
            "timestamp": "2026-12-07T10:00:00Z", "operation": "resolve",
            "requester": {"agent_id": "ag", "session_id": sid.to_string()},
            "task": {"goal": "pay and call", "risk_tier": "medium"}
        }))
        .expect("valid");
        let limits = Limits::new();
        let trace = Uuid::now_v7();
        let input = ResolveInput {
            snapshot: reg.snapshot(),
            limits: &limits,
            now: 1_000_000,
            trace_id: trace,
            max_candidate_actions: 1000,
        };
        let mut first = resolve(&input, &req).expect("resolves");
        // As if the rate limit had been full: a.call denied by it.
        let at = first
            .evaluations
            .iter()
            .position(|e| &*first.action(e).action_id == "a.call")
            .unwrap();
        let rl = first.evaluations[at].rate_limit.unwrap();
        first.evaluations[at].outcome = Outcome::Deny;
        first.evaluations[at].policy = Some(rl);
        first.evaluations[at].deny = Some(DenyReason::RateLimit);
        decide_again(&mut first);
        let doc = ResolutionDoc::from_json(&ResolutionDoc::of(&first).to_json()).unwrap();
        let again = doc.remake(reg.snapshot(), trace).expect("remade");
        assert_eq!(again.resolution_id, first.resolution_id);
        assert_eq!(again.approval_id, first.approval_id);
        assert!(again.approval_id.is_some());
        assert_eq!(again.expires_at, first.expires_at);
        assert_eq!(again.decision, first.decision);
        let outcomes = |r: &Resolution| -> Vec<(String, Outcome, String)> {
            r.evaluations
                .iter()
                .map(|e| {
                    (
                        r.action(e).action_id.to_string(),
                        e.outcome,
                        r.policy_id(e).to_string(),
                    )
                })
                .collect()
        };
        assert_eq!(outcomes(&again), outcomes(&first));
        assert!(!again.is_allowed("a.call"));
        // Under another version of the atlas: resolve again.
        let other = registry();
        let bumped = json!({
            "atlas_version": "1.0", "atlas_id": "t.doc", "version": "1.3.0",
            "name": "T", "description": "T",
            "actions": [{"action_id": "a.read", "name": "R", "description": "R"}],
            "policies": [{"policy_id": "ok", "type": "allow", "actions": ["a.*"]}]
        });
        other
            .load(Atlas::build(Arc::new(bumped), None).unwrap(), true)
            .unwrap();
        let err = doc.remake(other.snapshot(), trace).unwrap_err();
        assert_eq!(err.code(), "RESOLUTION_EXPIRED");
    }
}
