//! The checks of an execute request in protocol order (CARP §5): the
//! resolution's decision, the policies loaded now, approval, limits,
//! parameters and idempotency key. A request that passes them all becomes
//! a ticket to run.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::atlas::policy::{Limit, RiskTier, Scope};
use crate::carp::applicable::applicable;
use crate::carp::approvals::{Gate, Pending};
use crate::carp::execute::{idem_fingerprint, ExecError, Happened, Status};
use crate::carp::limits::{ScopeKey, Standing};
use crate::carp::request::{CarpRequest, Execution};
use crate::carp::resolution::{DenyReason, Outcome, DEFAULT_DENY_ID, DEFAULT_DENY_REASON};
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
            let reason = format!(
                "{action_id} is not an action of resolution {}",
                resolution.resolution_id
            );
            return ctx.deny(
                "ACTION_NOT_ALLOWED",
                "not_in_resolution",
                &reason,
                json!({"action_id": action_id}),
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
        // ...and still be, by the policies loaded now.
        let snap = self.registry.snapshot();
        let Some(&(ai, xi)) = snap.compiled.actions.get(action_id) else {
            return ctx.deny(
                "ACTION_NOT_ALLOWED",
                "not_loaded",
                &format!("{action_id} is no longer loaded"),
                json!({"action_id": action_id}),
                None,
                wait,
            );
        };
        let mut in_candidates = vec![false; snap.atlases.len()];
        for id in &resolution.echo.atlas_ids {
            if let Some(&i) = snap.index.get(&**id) {
                in_candidates[i as usize] = true;
            }
        }
        let risk = resolution
            .echo
            .risk_tier
            .unwrap_or(RiskTier::Low)
            .max(req.risk());
        let applied = applicable(&snap, &in_candidates, ai, xi, risk, &req.agent_id);
        if let Some(d) = applied.deny {
            let p = snap.policy(d);
            return ctx.deny(
                "ACTION_NOT_ALLOWED",
                &p.policy_id,
                &p.reason,
                json!({"action_id": action_id}),
                None,
                wait,
            );
        }
        let action = &snap.atlases[ai as usize].actions[xi as usize];
        let gate_policy: Option<Arc<str>> = applied
            .approval
            .map(|r| Arc::clone(&snap.policy(r).policy_id))
            .or_else(|| {
                action
                    .requires_confirmation
                    .then(|| Arc::from("requires_confirmation"))
            });
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
            match self.approvals.gate(pending.clone(), now) {
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
        } else if applied.allow.is_none() {
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
        // Limits: checked and counted in one step.
        let limits: Vec<_> = applied
            .limits
            .iter()
            .map(|&r| {
                let p = snap.policy(r);
                let scope = match &p.limit {
                    Limit::Rate { scope, .. } | Limit::Budget { scope, .. } => *scope,
                    Limit::None => Scope::Global,
                };
                (p, ScopeKey::of(scope, session.session_id, &req.agent_id))
            })
            .collect();
        let reservation = match self.limits.acquire(&limits, action_id, now) {
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
        // Parameters against the compiled schema.
        if let Some(validator) = &action.validator {
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
            match session.claim_key(k, &idem_fingerprint(&ctx.echo)?) {
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

fn unreachable_ok() -> Result<Begin> {
    Err(CoreError::invalid(
        "INTERNAL",
        "",
        "a limit refused without a reason",
    ))
}
