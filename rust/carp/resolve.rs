//! The resolve algorithm (CARP/1.0): candidate atlases and actions, the
//! deciding policy of each action, the decision, context and constraints.

use std::sync::{Arc, LazyLock};

use smallvec::SmallVec;
use uuid::Uuid;

use crate::atlas::limits::RESOLUTION_TOO_LARGE;
use crate::atlas::model::DEFAULT_TTL_SECONDS;
use crate::atlas::policy::{Limit, PolicyType, RiskTier};
use crate::atlas::registry::{PolicyRef, Snapshot};
use crate::carp::keywords::{contains, lower, Lowered};
use crate::carp::limits::{Limits, ScopeKey, Standing};
use crate::carp::request::{capability_path, CarpRequest};
use crate::carp::resolution::{
    BlockRef, DecisionType, DenyReason, Evaluation, Outcome, RequestEcho, Resolution,
};
use crate::error::{CoreError, Fault, Result};
use crate::ids::new_v7;
use crate::time::Micros;

/// What resolve reads besides the request.
pub struct ResolveInput<'a> {
    pub snapshot: Arc<Snapshot>,
    pub limits: &'a Limits,
    pub now: Micros,
    pub trace_id: Uuid,
    /// Candidate actions one resolve may weigh (`AtlasLimits`); more is
    /// `RESOLUTION_TOO_LARGE`, so a response and its trace stay bounded.
    pub max_candidate_actions: u64,
}

/// Few atlases are loaded at once: the candidate lists of a resolve stay
/// on the stack (they spill to the heap past these sizes).
type AtlasList = SmallVec<[u32; 8]>;
type ActionList = SmallVec<[(u32, u32); 16]>;

/// The candidate atlases, in request order (or load order).
fn candidates(snap: &Snapshot, req: &CarpRequest) -> Result<AtlasList> {
    match &req.atlas_ids {
        None => Ok((0..snap.atlases.len() as u32).collect()),
        Some(ids) => {
            let mut out = AtlasList::with_capacity(ids.len());
            for (n, id) in ids.iter().enumerate() {
                let &i = snap.index.get(id.as_str()).ok_or_else(|| {
                    CoreError::AtlasNotFound(id.clone(), Some(format!("/atlas_ids/{n}")))
                })?;
                if !out.contains(&i) {
                    out.push(i);
                }
            }
            Ok(out)
        }
    }
}

/// `RESOLUTION_TOO_LARGE` when a request weighs more candidate actions than
/// `max`, at what narrows it: its capabilities if it names some, else its
/// atlas ids.
fn check_size(n: usize, max: u64, req: &CarpRequest) -> Result<()> {
    if n as u64 <= max {
        return Ok(());
    }
    let path = if req.required_capabilities.is_some() {
        "/task/required_capabilities"
    } else {
        "/atlas_ids"
    };
    Err(CoreError::invalid(
        RESOLUTION_TOO_LARGE,
        path,
        format!(
            "the request selects {n} candidate actions, more than one resolve weighs \
             (limit max_candidate_actions = {max}); narrow it with atlas_ids or \
             task.required_capabilities"
        ),
    ))
}

/// Candidate actions `(atlas, action)` in atlas then declaration order.
fn candidate_actions(snap: &Snapshot, atlases: &[u32], req: &CarpRequest) -> Result<ActionList> {
    let Some(caps) = &req.required_capabilities else {
        return Ok(atlases
            .iter()
            .flat_map(|&a| (0..snap.atlases[a as usize].actions.len() as u32).map(move |i| (a, i)))
            .collect());
    };
    let mut faults = Vec::new();
    for (i, cap) in caps.iter().enumerate() {
        let known = atlases
            .iter()
            .any(|&a| snap.compiled.capabilities[a as usize].contains_key(cap.as_str()));
        if !known {
            faults.push(Fault::new(
                capability_path(i),
                format!("unknown capability {cap:?} in the candidate atlases"),
            ));
        }
    }
    if !faults.is_empty() {
        return Err(CoreError::InvalidRequest(faults));
    }
    let mut out = ActionList::new();
    for &a in atlases {
        let map = &snap.compiled.capabilities[a as usize];
        let mut chosen: Vec<u32> = caps
            .iter()
            .filter_map(|c| map.get(c.as_str()))
            .flatten()
            .copied()
            .collect();
        chosen.sort_unstable();
        chosen.dedup();
        out.extend(chosen.into_iter().map(|i| (a, i)));
    }
    Ok(out)
}

struct Ctx<'a> {
    snap: &'a Snapshot,
    in_candidates: SmallVec<[bool; 8]>,
    risk: RiskTier,
    req: &'a CarpRequest,
    input: &'a ResolveInput<'a>,
    /// Collected on the stack; the resolution gets an exact-size copy.
    constraints: SmallVec<[PolicyRef; 8]>,
}

impl Ctx<'_> {
    fn constrain(&mut self, r: PolicyRef) {
        if !self.constraints.contains(&r) {
            self.constraints.push(r);
        }
    }

    /// Records the rate_limit and budget policies that apply to an action
    /// needing approval, without letting them decide.
    fn limits_after_approval(&mut self, rest: &[PolicyRef], e: &mut Evaluation) {
        for &r in rest {
            let p = self.snap.policy(r);
            if !matches!(p.kind, PolicyType::RateLimit | PolicyType::Budget)
                || !self.in_candidates[r.atlas as usize]
                || !p.conditions_hold(self.risk, &self.req.agent_id)
            {
                continue;
            }
            self.constrain(r);
            if p.kind == PolicyType::RateLimit && e.rate_limit.is_none() {
                e.rate_limit = Some(r);
            }
        }
    }

    /// The deciding policy of one action.
    fn evaluate(&mut self, atlas: u32, action: u32) -> Evaluation {
        let mut e = Evaluation {
            atlas,
            action,
            outcome: Outcome::Deny,
            policy: None,
            deny: Some(DenyReason::Default),
            rate_limit: None,
        };
        let snap = self.snap;
        let action_id = &snap.atlases[atlas as usize].actions[action as usize].action_id;
        let list = &snap.compiled.action_policies[atlas as usize][action as usize];
        for (i, &r) in list.iter().enumerate() {
            if !self.in_candidates[r.atlas as usize] {
                continue;
            }
            let p = self.snap.policy(r);
            if !p.conditions_hold(self.risk, &self.req.agent_id) {
                continue;
            }
            match p.kind {
                PolicyType::Deny => {
                    e.policy = Some(r);
                    e.deny = Some(DenyReason::Policy);
                    return e;
                }
                PolicyType::RequireApproval => {
                    self.constrain(r);
                    e.outcome = Outcome::NeedsApproval;
                    e.policy = Some(r);
                    e.deny = None;
                    // Once approved, the action's rate limits and budgets
                    // still hold: they constrain it (and name its rate_limit).
                    self.limits_after_approval(&list[i + 1..], &mut e);
                    return e;
                }
                PolicyType::RateLimit | PolicyType::Budget => {
                    self.constrain(r);
                    if p.kind == PolicyType::RateLimit && e.rate_limit.is_none() {
                        e.rate_limit = Some(r);
                    }
                    let scope = match &p.limit {
                        Limit::Rate { scope, .. } | Limit::Budget { scope, .. } => *scope,
                        Limit::None => continue,
                    };
                    let key = ScopeKey::of(scope, self.req.session_id, &self.req.agent_id);
                    match self
                        .input
                        .limits
                        .standing(p, &key, action_id, self.input.now)
                    {
                        Standing::Ok => {}
                        Standing::RateExceeded { .. } => {
                            e.policy = Some(r);
                            e.deny = Some(DenyReason::RateLimit);
                            return e;
                        }
                        Standing::BudgetExceeded { .. } => {
                            e.policy = Some(r);
                            e.deny = Some(DenyReason::Budget);
                            return e;
                        }
                    }
                }
                PolicyType::Allow => {
                    e.outcome = Outcome::Allow;
                    e.policy = Some(r);
                    e.deny = None;
                    return e;
                }
            }
        }
        e
    }
}

/// Context blocks whose pack conditions hold, by priority.
fn context_blocks(
    snap: &Snapshot,
    in_candidates: &[bool],
    req: &CarpRequest,
    risk: RiskTier,
) -> Vec<BlockRef> {
    // Collected on the stack; the resolution gets an exact-size copy.
    let lowered: Option<(Lowered<'_>, Vec<Lowered<'_>>)> = snap.compiled.any_keywords.then(|| {
        let hints = req
            .context_hints
            .iter()
            .flatten()
            .map(|h| lower(h))
            .collect();
        (lower(&req.goal), hints)
    });
    let mut out: SmallVec<[BlockRef; 8]> = SmallVec::new();
    for &r in &snap.compiled.packs {
        if !in_candidates[r.atlas as usize] {
            continue;
        }
        let pack = &snap.atlases[r.atlas as usize].packs[r.pack as usize];
        if let (Some(words), Some((goal, hints))) = (&pack.keywords, &lowered) {
            let hit = words
                .iter()
                .any(|w| contains(goal, w) || hints.iter().any(|h| contains(h, w)));
            if !hit {
                continue;
            }
        }
        if pack.risk_tiers != 0 && pack.risk_tiers & risk.bit() == 0 {
            continue;
        }
        if let Some(caps) = &pack.capabilities {
            let wanted = req.required_capabilities.iter().flatten();
            if !wanted.clone().any(|c| caps.contains(c)) {
                continue;
            }
        }
        out.extend((0..pack.blocks.len() as u32).map(|b| BlockRef { pack: r, block: b }));
    }
    out.into_vec()
}

fn decide(evals: &[Evaluation]) -> DecisionType {
    let allowed = evals.iter().filter(|e| e.outcome == Outcome::Allow).count();
    let approval = evals
        .iter()
        .filter(|e| e.outcome == Outcome::NeedsApproval)
        .count();
    let denied = evals.len() - allowed - approval;
    if allowed + approval == 0 {
        DecisionType::Deny
    } else if allowed == 0 {
        DecisionType::RequiresApproval
    } else if denied > 0 || approval > 0 {
        DecisionType::Partial
    } else {
        DecisionType::Allow
    }
}

/// The reasons of partial and approval decisions, shared by every resolution.
static PARTIAL: LazyLock<Arc<str>> =
    LazyLock::new(|| Arc::from("Some actions are denied by policy"));
static NEEDS_APPROVAL: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from("Human approval required"));

pub fn resolve(input: &ResolveInput<'_>, req: &CarpRequest) -> Result<Resolution> {
    let snap: &Snapshot = &input.snapshot;
    let atlases = candidates(snap, req)?;
    let actions = candidate_actions(snap, &atlases, req)?;
    check_size(actions.len(), input.max_candidate_actions, req)?;
    let mut in_candidates = SmallVec::from_elem(false, snap.atlases.len());
    for &a in &atlases {
        in_candidates[a as usize] = true;
    }
    let risk = req.risk();
    let mut ctx = Ctx {
        snap,
        in_candidates,
        risk,
        req,
        input,
        constraints: SmallVec::new(),
    };
    let evaluations: Vec<Evaluation> = actions.iter().map(|&(a, i)| ctx.evaluate(a, i)).collect();
    let blocks = context_blocks(snap, &ctx.in_candidates, req, risk);
    let constraints = std::mem::take(&mut ctx.constraints).into_vec();

    let decision = decide(&evaluations);
    let ttl = atlases
        .iter()
        .map(|&a| snap.atlases[a as usize].default_ttl_seconds)
        .min()
        .unwrap_or(DEFAULT_TTL_SECONDS);
    let mut res = Resolution {
        resolution_id: new_v7(input.now),
        request_id: req.request_id,
        session_id: req.session_id,
        trace_id: input.trace_id,
        agent_id: Arc::clone(&req.agent_id),
        timestamp: input.now,
        expires_at: input.now + ttl as i64 * 1_000_000,
        ttl_seconds: ttl,
        snapshot: Arc::clone(&input.snapshot),
        decision,
        reason: None,
        approval_id: None,
        evaluations,
        blocks,
        constraints,
        echo: RequestEcho {
            operation: req.operation,
            goal: Arc::clone(&req.goal),
            atlas_ids: atlases
                .iter()
                .map(|&a| Arc::clone(&snap.atlases[a as usize].atlas_id))
                .collect(),
            risk_tier: req.risk_tier,
            context_hints: req.context_hints.clone(),
            required_capabilities: req.required_capabilities.clone(),
        },
    };
    decide_again(&mut res);
    let confirm = res.allowed().any(|e| res.requires_confirmation(e));
    if decision == DecisionType::RequiresApproval || confirm {
        res.approval_id = Some(new_v7(input.now));
    }
    Ok(res)
}

/// Sets a resolution's decision and reason from its evaluations (again,
/// after evaluations changed: a resolution made again from its document).
pub fn decide_again(res: &mut Resolution) {
    res.decision = decide(&res.evaluations);
    res.reason = match res.decision {
        DecisionType::Allow => None,
        DecisionType::Partial => Some(Arc::clone(&PARTIAL)),
        DecisionType::RequiresApproval => Some(Arc::clone(&NEEDS_APPROVAL)),
        DecisionType::Deny => Some(match res.denied().next() {
            Some(e) => Arc::from(res.denial(e).1),
            None => Arc::from("No actions matched the request"),
        }),
    };
}

#[cfg(test)]
#[path = "resolve_tests.rs"]
mod tests;
