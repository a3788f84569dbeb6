//! The checks of an execute request in protocol order (CARP §5): the
//! resolution's decision, the policies loaded now, approval, limits,
//! parameters and idempotency key. A request that passes them all becomes
//! a ticket to run.

use std::sync::Arc;

use serde_json::{json, Value};

use jsonschema::Validator;

use crate::atlas::limits::distance;
use crate::atlas::model::Action;
use crate::atlas::policy::{Limit, Policy, RiskTier, Scope};
use crate::atlas::registry::Snapshot;
use crate::carp::applicable::{applicable, Applied};
use crate::carp::approvals::{Gate, Pending};
use crate::carp::execute::{idem_fingerprint, ExecError, Happened, Status};
use crate::carp::limits::{ScopeKey, Standing};
use crate::carp::request::{CarpRequest, Execution};
use crate::carp::resolution::{
    DenyReason, Outcome, Resolution, DEFAULT_DENY_ID, DEFAULT_DENY_REASON,
};
use crate::error::{CoreError, Result};
use crate::ids::new_v7;
use crate::json::canonical::to_canonical;
use crate::json::fields::schema_faults;
use crate::runtime::execute_answer::{Begin, Ctx, Ticket};
use crate::runtime::session::{IdemClaim, Session};
use crate::runtime::state::{Runtime, Wait};
use crate::time::Micros;

impl Runtime {
    pub(crate) fn begin_checked(
        &self,
        req: &CarpRequest,
        mut exec: Execution,
        session: Arc<Session>,
        now: Micros,
        wait: &impl Wait,
    ) -> Result<Begin> {
        let resolution = self.resolution_for(&session, &exec.resolution_id, now)?;
        let parameters = Arc::new(std::mem::take(&mut exec.parameters));
        let echo = self.echo(req, &exec, &resolution, Arc::clone(&parameters));
        // The idempotency key is claimed only once every check has passed
        // (§5 order), so denied and pending answers are never remembered.
        let mut ctx = Ctx {
            rt: self,
            session: Arc::clone(&session),
            resolution: Arc::clone(&resolution),
            echo,
            execution_id: new_v7(now),
            key: None,
            started: now,
        };
        let action_id = exec.action_id.as_str();

        // The action must be allowed by the resolution...
        let Some(eval) = resolution.evaluation(action_id).copied() else {
            let mut reason = format!(
                "{action_id} is not an action of resolution {}",
                resolution.resolution_id
            );
            let mut details = json!({"action_id": action_id});
            if let Some(near) = nearest_allowed(&resolution, action_id) {
                reason.push_str(&format!("; did you mean {near}?"));
                details["did_you_mean"] = json!(&*near);
            }
            return ctx.deny(
                "ACTION_NOT_ALLOWED",
                "not_in_resolution",
                &reason,
                details,
                None,
                wait,
            );
        };
        // A limit that was exhausted at resolve time may have room now: the
        // re-check below decides. Any other denial stands.
        let limit_denied = matches!(eval.deny, Some(DenyReason::RateLimit | DenyReason::Budget));
        if eval.outcome == Outcome::Deny && !limit_denied {
            let (policy_id, reason) = resolution.denial(&eval);
            let (policy_id, reason) = (policy_id.to_string(), reason.to_string());
            return ctx.deny(
                "ACTION_NOT_ALLOWED",
                &policy_id,
                &reason,
                json!({"action_id": action_id}),
                None,
                wait,
            );
        }
        // ...and still be, by the policies loaded now AND by those of the
        // snapshot the resolution was issued under: both must let it
        // through, so the stricter answer wins. When nothing was loaded
        // since (the same snapshot), the policies are looked at once.
        let snap = self.registry.snapshot();
        let Some(&(ai, xi)) = snap.compiled.actions.get(action_id) else {
            let reason = format!(
                "{action_id} was removed from the loaded atlases after resolution {} was issued",
                resolution.resolution_id
            );
            return ctx.deny(
                "ACTION_NOT_ALLOWED",
                "not_loaded",
                &reason,
                json!({"action_id": action_id}),
                None,
                wait,
            );
        };
        let risk = resolution
            .echo
            .risk_tier
            .unwrap_or(RiskTier::Low)
            .max(req.risk());
        // Policies match, and agent-scoped limits count, by the session's
        // agent: no request text chooses them.
        let agent: &str = &session.agent_id;
        let then_snap: &Snapshot = &resolution.snapshot;
        let same = Arc::ptr_eq(&snap, &resolution.snapshot);
        let candidates = &resolution.echo.atlas_ids;
        let applied = applied_in(&snap, candidates, ai, xi, risk, agent);
        let then = (!same)
            .then(|| applied_in(then_snap, candidates, eval.atlas, eval.action, risk, agent));
        let action = &snap.atlases[ai as usize].actions[xi as usize];
        // What the trace records of parameters and result: as the atlas
        // loaded now says (a newly added `redact` applies at once).
        ctx.echo.trace = action.trace.clone();
        let then_action = resolution.action(&eval);
        let denied = then
            .as_ref()
            .and_then(|t| t.deny.map(|d| then_snap.policy(d)))
            .or_else(|| applied.deny.map(|d| snap.policy(d)));
        if let Some(p) = denied {
            return ctx.deny(
                "ACTION_NOT_ALLOWED",
                &p.policy_id,
                &p.reason,
                json!({"action_id": action_id}),
                None,
                wait,
            );
        }
        let gate_policy: Option<Arc<str>> = then
            .as_ref()
            .and_then(|t| gate_of(then_snap, t, then_action))
            .or_else(|| gate_of(&snap, &applied, action));
        let mut grant = None;
        if let Some(policy_id) = gate_policy {
            let Some(approval_id) = resolution.approval_id else {
                let reason = "this action now needs approval; resolve again to get an approval id";
                return ctx.deny(
                    "ACTION_NOT_ALLOWED",
                    &policy_id,
                    reason,
                    json!({"action_id": action_id}),
                    None,
                    wait,
                );
            };
            let pending = Pending {
                approval_id,
                session_id: session.session_id,
                resolution_id: resolution.resolution_id,
                action_id: Arc::clone(&action.action_id),
                parameters_hash: ctx.echo.parameters_hash.get()?.to_string(),
                parameters: Arc::from(to_canonical(&parameters)?),
                requested_at: now,
            };
            match self.approvals.gate(pending.clone(), now)? {
                Gate::Granted => grant = Some(pending),
                Gate::Rejected { approver } => {
                    let reason = format!("approval {approval_id} was rejected by {approver}");
                    return ctx.deny(
                        "APPROVAL_REJECTED",
                        &policy_id,
                        &reason,
                        json!({"approval_id": approval_id.to_string(), "approver": approver}),
                        None,
                        wait,
                    );
                }
                Gate::Waiting => {
                    let details = json!({"approval_id": approval_id.to_string(), "action_id": action_id, "parameters_hash": &pending.parameters_hash});
                    let err = ExecError {
                        code: "APPROVAL_REQUIRED",
                        message: format!("{action_id} waits for a human to approve it"),
                        details,
                    };
                    let resp = ctx.response(Status::PendingApproval, Some(err), None);
                    return ctx
                        .answer(resp, Happened::Pending { policy_id }, wait)
                        .map(Begin::Answer);
                }
            }
        } else if applied.allow.is_none() || then.as_ref().is_some_and(|t| t.allow.is_none()) {
            let reason = DEFAULT_DENY_REASON;
            return ctx.deny(
                "ACTION_NOT_ALLOWED",
                DEFAULT_DENY_ID,
                reason,
                json!({"action_id": action_id}),
                None,
                wait,
            );
        }
        let give_back = |g: &Option<Pending>| {
            if let Some(p) = g {
                self.approvals
                    .restore(&p.approval_id, &p.action_id, &p.parameters_hash);
            }
        };
        // Limits of either snapshot, checked and counted in one step (a
        // policy in both shares its counter and is counted once).
        let key_of = |p: &Policy| {
            let scope = match &p.limit {
                Limit::Rate { scope, .. } | Limit::Budget { scope, .. } => *scope,
                Limit::None => Scope::Global,
            };
            ScopeKey::of(scope, session.session_id, agent)
        };
        let then_limits = then.as_ref().map(|t| &t.limits[..]).unwrap_or_default();
        let limits: Vec<(&Policy, ScopeKey)> = then_limits
            .iter()
            .map(|&r| then_snap.policy(r))
            .chain(applied.limits.iter().map(|&r| snap.policy(r)))
            .map(|p| (p, key_of(p)))
            .collect();
        let acquired = match self.limits.acquire(&limits, action_id, now) {
            Ok(a) => a,
            Err(e) => {
                give_back(&grant);
                return Err(CoreError::TraceUnavailable(format!(
                    "the shared limits cannot be counted: {e}"
                )));
            }
        };
        let reservation = match acquired {
            Ok(r) => r,
            Err((i, standing)) => {
                give_back(&grant);
                let p = limits[i].0;
                return match standing {
                    Standing::RateExceeded { retry_after } => {
                        let secs = retry_after as f64 / 1e6;
                        let details = json!({"retry_after": secs, "policy_id": &*p.policy_id});
                        ctx.deny(
                            "RATE_LIMIT_EXCEEDED",
                            &p.policy_id,
                            "rate_limit_exceeded",
                            details,
                            Some("rate_limit"),
                            wait,
                        )
                    }
                    Standing::BudgetExceeded { spent, limit } => {
                        let details = json!({"spent": spent, "limit": limit, "cost": p.cost_of(action_id), "policy_id": &*p.policy_id});
                        ctx.deny(
                            "BUDGET_EXCEEDED",
                            &p.policy_id,
                            "budget_exceeded",
                            details,
                            Some("budget"),
                            wait,
                        )
                    }
                    Standing::Ok => unreachable_ok(),
                };
            }
        };
        // Parameters against the schema the resolution was issued under and
        // the one loaded now (once when it is the same compiled schema).
        for validator in validators(then_action, action).into_iter().flatten() {
            let faults = schema_faults(validator, &parameters, "");
            if !faults.is_empty() {
                self.limits.release(reservation);
                give_back(&grant);
                let errors: Vec<Value> = faults
                    .iter()
                    .map(|f| json!({"path": f.path, "message": f.message}))
                    .collect();
                let details = json!({"errors": errors});
                let message = format!("{} parameter error(s): {}", faults.len(), faults[0]);
                let err = ExecError {
                    code: "INVALID_PARAMETERS",
                    message,
                    details: details.clone(),
                };
                let resp = ctx.response(Status::Error, Some(err), None);
                let happened = Happened::Denied {
                    policy_id: Arc::from("parameters_schema"),
                    reason: "invalid_parameters".into(),
                    violation: Some(("invalid_parameters", details)),
                };
                return ctx.answer(resp, happened, wait).map(Begin::Answer);
            }
        }
        // Idempotency: the same key and request answer with the first response.
        if let Some(k) = &exec.idempotency_key {
            let claimed = match self.claim_key(&session, k, &idem_fingerprint(&ctx.echo)?) {
                Ok(c) => c,
                Err(e) => {
                    self.limits.release(reservation);
                    give_back(&grant);
                    return Err(e);
                }
            };
            match claimed {
                IdemClaim::Claimed => ctx.key = Some(k.clone()),
                IdemClaim::Conflict => {
                    self.limits.release(reservation);
                    give_back(&grant);
                    return Err(CoreError::IdempotencyConflict(k.clone()));
                }
                IdemClaim::Replay(first) => {
                    // Nothing runs, so nothing counts; a once-grant taken
                    // here was granted for this very request and is spent.
                    self.limits.release(reservation);
                    self.push_execution(
                        &session,
                        ctx.echo,
                        first.execution_id,
                        Happened::Replayed,
                        now,
                        wait,
                    )?;
                    return Ok(Begin::Answer(first));
                }
            }
        }
        Ok(Begin::Run(Box::new(Ticket {
            session,
            resolution,
            echo: ctx.echo,
            execution_id: ctx.execution_id,
            executor: action.executor.clone(),
            parameters,
            reservation,
            grant,
            idempotency_key: ctx.key,
            started: now,
        })))
    }
}

/// The policies of one snapshot that apply to an execution: those of the
/// resolution's candidate atlases that snapshot holds.
fn applied_in(
    snap: &Snapshot,
    candidates: &[Arc<str>],
    atlas: u32,
    action: u32,
    risk: RiskTier,
    agent: &str,
) -> Applied {
    let mut in_candidates = vec![false; snap.atlases.len()];
    for id in candidates {
        if let Some(&i) = snap.index.get(&**id) {
            in_candidates[i as usize] = true;
        }
    }
    applicable(snap, &in_candidates, atlas, action, risk, agent)
}

/// The approval gate one snapshot puts on an action, if any.
fn gate_of(snap: &Snapshot, applied: &Applied, action: &Action) -> Option<Arc<str>> {
    applied
        .approval
        .map(|r| Arc::clone(&snap.policy(r).policy_id))
        .or_else(|| {
            action
                .requires_confirmation
                .then(|| Arc::from("requires_confirmation"))
        })
}

/// The parameter schemas an execution must pass: the action's as the
/// resolution was issued, and as loaded now when that is another schema.
pub(crate) fn validators<'a>(then: &'a Action, now: &'a Action) -> [Option<&'a Arc<Validator>>; 2] {
    let first = then.validator.as_ref();
    let second = now
        .validator
        .as_ref()
        .filter(|v| first.is_none_or(|f| !Arc::ptr_eq(f, v)));
    [first, second]
}

fn unreachable_ok() -> Result<Begin> {
    Err(CoreError::invalid(
        "INTERNAL",
        "",
        "a limit refused without a reason",
    ))
}

/// The allowed action of `resolution` whose id is closest to `action_id`
/// (a typo: edit distance at most 3).
fn nearest_allowed(resolution: &Resolution, action_id: &str) -> Option<Arc<str>> {
    resolution
        .allowed()
        .map(|e| &resolution.action(e).action_id)
        .map(|id| (distance(action_id, id), id))
        .filter(|(d, _)| *d <= 3)
        .min_by_key(|(d, _)| *d)
        .map(|(_, id)| Arc::clone(id))
}
