//! The policies that apply to one action, by type, in the order they are
//! checked (deny, require_approval, rate_limit/budget, allow).

use smallvec::SmallVec;

use crate::atlas::policy::{PolicyType, RiskTier};
use crate::atlas::registry::{PolicyRef, Snapshot};

#[derive(Debug, Default, Clone)]
pub struct Applied {
    pub deny: Option<PolicyRef>,
    pub approval: Option<PolicyRef>,
    /// rate_limit and budget policies, in checking order.
    pub limits: SmallVec<[PolicyRef; 4]>,
    pub allow: Option<PolicyRef>,
}

/// Collects the first deny, first require_approval, every limit and the
/// first allow among the policies of candidate atlases whose patterns and
/// conditions hold for this action and requester.
pub fn applicable(
    snap: &Snapshot,
    in_candidates: &[bool],
    atlas: u32,
    action: u32,
    risk: RiskTier,
    agent_id: &str,
) -> Applied {
    let mut out = Applied::default();
    for &r in &snap.compiled.action_policies[atlas as usize][action as usize] {
        if !in_candidates
            .get(r.atlas as usize)
            .copied()
            .unwrap_or(false)
        {
            continue;
        }
        let p = snap.policy(r);
        if !p.conditions_hold(risk, agent_id) {
            continue;
        }
        match p.kind {
            PolicyType::Deny => {
                out.deny.get_or_insert(r);
            }
            PolicyType::RequireApproval => {
                out.approval.get_or_insert(r);
            }
            PolicyType::RateLimit | PolicyType::Budget => out.limits.push(r),
            PolicyType::Allow => {
                out.allow.get_or_insert(r);
            }
        }
    }
    out
}
