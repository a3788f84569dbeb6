//! A resolution: what an agent may do for a goal, and why. Kept compact
//! (positions into the atlas snapshot it was made from); rendered to JSON
//! only when asked.

use std::sync::Arc;

use uuid::Uuid;

use crate::atlas::model::{Action, Block};
use crate::atlas::policy::{PolicyType, RiskTier};
use crate::atlas::registry::{PackRef, PolicyRef, Snapshot};
use crate::carp::request::Operation;
use crate::time::Micros;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionType {
    Allow,
    Deny,
    Partial,
    RequiresApproval,
}

impl DecisionType {
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionType::Allow => "allow",
            DecisionType::Deny => "deny",
            DecisionType::Partial => "partial",
            DecisionType::RequiresApproval => "requires_approval",
        }
    }
}

/// The outcome for one candidate action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Allow,
    NeedsApproval,
    Deny,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::NeedsApproval => "requires_approval",
            Outcome::Deny => "deny",
        }
    }
}

/// Why an action was denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    Policy,
    RateLimit,
    Budget,
    Default,
}

pub const DEFAULT_DENY_ID: &str = "default-deny";
pub const DEFAULT_DENY_REASON: &str = "No policy allows this action";

/// One candidate action and its deciding policy.
#[derive(Debug, Clone, Copy)]
pub struct Evaluation {
    pub atlas: u32,
    pub action: u32,
    pub outcome: Outcome,
    /// `None`: denied by default.
    pub policy: Option<PolicyRef>,
    pub deny: Option<DenyReason>,
    /// The first rate_limit policy that applied.
    pub rate_limit: Option<PolicyRef>,
}

#[derive(Debug, Clone, Copy)]
pub struct BlockRef {
    pub pack: PackRef,
    pub block: u32,
}

#[derive(Debug)]
pub struct Resolution {
    pub resolution_id: Uuid,
    pub request_id: Uuid,
    pub session_id: Uuid,
    pub trace_id: Uuid,
    pub agent_id: Arc<str>,
    pub timestamp: Micros,
    pub expires_at: Micros,
    pub ttl_seconds: u32,
    pub snapshot: Arc<Snapshot>,
    pub decision: DecisionType,
    pub reason: Option<Arc<str>>,
    pub approval_id: Option<Uuid>,
    pub evaluations: Vec<Evaluation>,
    pub blocks: Vec<BlockRef>,
    /// rate_limit, budget and require_approval policies that applied.
    pub constraints: Vec<PolicyRef>,
    /// What the request said, for its `carp.request.received` event.
    pub echo: RequestEcho,
}

#[derive(Debug, Clone)]
pub struct RequestEcho {
    pub operation: Operation,
    pub goal: Arc<str>,
    pub atlas_ids: Vec<Arc<str>>,
    pub risk_tier: Option<RiskTier>,
    pub context_hints: Option<Vec<String>>,
    pub required_capabilities: Option<Vec<String>>,
}

impl Resolution {
    pub fn action(&self, e: &Evaluation) -> &Action {
        &self.snapshot.atlases[e.atlas as usize].actions[e.action as usize]
    }

    pub fn block(&self, b: &BlockRef) -> (&Block, &Arc<str>, i64) {
        let atlas = &self.snapshot.atlases[b.pack.atlas as usize];
        let pack = &atlas.packs[b.pack.pack as usize];
        (
            &pack.blocks[b.block as usize],
            &atlas.atlas_id,
            pack.priority,
        )
    }

    pub fn allowed(&self) -> impl Iterator<Item = &Evaluation> {
        self.evaluations
            .iter()
            .filter(|e| e.outcome != Outcome::Deny)
    }

    pub fn denied(&self) -> impl Iterator<Item = &Evaluation> {
        self.evaluations
            .iter()
            .filter(|e| e.outcome == Outcome::Deny)
    }

    /// The evaluation of an action, if it was a candidate.
    pub fn evaluation(&self, action_id: &str) -> Option<&Evaluation> {
        self.evaluations
            .iter()
            .find(|e| &*self.action(e).action_id == action_id)
    }

    pub fn is_allowed(&self, action_id: &str) -> bool {
        self.evaluation(action_id)
            .is_some_and(|e| e.outcome != Outcome::Deny)
    }

    /// `requires_confirmation` of an allowed action.
    pub fn requires_confirmation(&self, e: &Evaluation) -> bool {
        e.outcome == Outcome::NeedsApproval || self.action(e).requires_confirmation
    }

    /// `(policy_id, reason)` of a denial.
    pub fn denial(&self, e: &Evaluation) -> (&str, &str) {
        match (e.policy, e.deny) {
            (Some(p), Some(DenyReason::RateLimit)) => {
                (&self.snapshot.policy(p).policy_id, "rate_limit_exceeded")
            }
            (Some(p), Some(DenyReason::Budget)) => {
                (&self.snapshot.policy(p).policy_id, "budget_exceeded")
            }
            (Some(p), _) => {
                let p = self.snapshot.policy(p);
                (&p.policy_id, &p.reason)
            }
            (None, _) => (DEFAULT_DENY_ID, DEFAULT_DENY_REASON),
        }
    }

    /// The deciding policy id of an evaluation.
    pub fn policy_id(&self, e: &Evaluation) -> &str {
        e.policy
            .map(|p| &*self.snapshot.policy(p).policy_id)
            .unwrap_or(DEFAULT_DENY_ID)
    }

    pub fn constraint_type(&self, r: PolicyRef) -> PolicyType {
        self.snapshot.policy(r).kind
    }
}
