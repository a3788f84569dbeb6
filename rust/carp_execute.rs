//! Execute and validate (CARP §5, §6): the checks in protocol order, the
//! answer, and one record with all of the execution's events.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::approvals::{Gate, Pending};
use crate::canonical::to_canonical;
use crate::chain::{Body, Record, SpanRef};
use crate::decide::applicable;
use crate::error::{CoreError, Fault, Result};
use crate::execute::{
    ExecEcho, ExecError, ExecuteResponse, Happened, ParamsHash, RunResult, Status, Ticket,
};
use crate::execute_events::ExecuteTrace;
use crate::ids::new_v7;
use crate::limits::{ScopeKey, Standing};
use crate::policy::{Limit, RiskTier};
use crate::request::{parse_request, session_hint, CarpRequest, Execution, Operation};
use crate::resolution::{DenyReason, Outcome, Resolution};
use crate::resolution_store::Lookup;
use crate::runtime::{Runtime, Wait};
use crate::session::{IdemClaim, Session};
use crate::time::Micros;

/// The first step of an execution: an answer now, or a ticket to run.
pub enum Begin {
    Answer(Arc<ExecuteResponse>),
    Run(Box<Ticket>),
}

/// Every schema violation of `value`, each with its JSON pointer.
pub fn schema_faults(validator: &jsonschema::Validator, value: &Value, base: &str) -> Vec<Fault> {
    validator
        .iter_errors(value)
        .map(|e| Fault::new(format!("{base}{}", e.instance_path()), e.to_string()))
        .collect()
}

struct Ctx<'a> {
    rt: &'a Runtime,
    session: Arc<Session>,
    resolution: Arc<Resolution>,
    echo: ExecEcho,
    execution_id: uuid::Uuid,
    key: Option<String>,
    /// When the execution was admitted: all its events carry this time, so
    /// a replay counts it toward limits when the live runtime did.
    started: crate::time::Micros,
}

impl Ctx<'_> {
    fn response(
        &self,
        status: Status,
        error: Option<ExecError>,
        result: Option<Arc<str>>,
    ) -> ExecuteResponse {
        ExecuteResponse {
            execution_id: self.execution_id,
            request_id: self.echo.request_id,
            resolution_id: self.resolution.resolution_id,
            timestamp: self.rt.now(),
            status,
            result,
            error,
            trace_id: self.session.trace_id,
        }
    }

    /// Records the execution's events and keeps a terminal answer for its key.
    fn answer(
        self,
        resp: ExecuteResponse,
        happened: Happened,
        wait: &impl Wait,
    ) -> Result<Arc<ExecuteResponse>> {
        let resp = Arc::new(resp);
        if let Some(key) = &self.key {
            if matches!(resp.status, Status::Success | Status::Error) {
                self.session
                    .finish_key(key, &idem_fingerprint(&self.echo)?, Arc::clone(&resp));
            } else {
                self.session.drop_key(key);
            }
        }
        self.rt.push_execution(
            &self.session,
            self.echo,
            self.execution_id,
            happened,
            self.started,
            wait,
        )?;
        Ok(resp)
    }

    fn deny(
        self,
        code: &'static str,
        policy_id: &str,
        reason: &str,
        details: Value,
        violation: Option<&'static str>,
        wait: &impl Wait,
    ) -> Result<Begin> {
        let message = match code {
            "RATE_LIMIT_EXCEEDED" => format!(
                "{} is over the rate limit of policy {policy_id}; retry in {:.1} s",
                self.echo.action_id,
                details
                    .get("retry_after")
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0)
            ),
            "BUDGET_EXCEEDED" => {
                format!(
                    "{} would overspend the budget of policy {policy_id}",
                    self.echo.action_id
                )
            }
            _ => reason.to_string(),
        };
        let err = ExecError {
            code,
            message,
            details: details.clone(),
        };
        let resp = self.response(Status::Denied, Some(err), None);
        let happened = Happened::Denied {
            policy_id: Arc::from(policy_id),
            reason: reason.to_string(),
            violation: violation.map(|v| (v, details)),
        };
        self.answer(resp, happened, wait).map(Begin::Answer)
    }
}

impl Runtime {
    /// Pushes one record holding all events of an execution.
    pub(crate) fn push_execution(
        &self,
        session: &Session,
        echo: ExecEcho,
        execution_id: uuid::Uuid,
        happened: Happened,
        now: crate::time::Micros,
        wait: &impl Wait,
    ) -> Result<()> {
        let trace = ExecuteTrace {
            echo,
            execution_id,
            happened,
        };
        let rec = Record {
            session_id: session.session_id,
            span: SpanRef::Child(new_v7(now)),
            micros: now,
            body: Body::Many(Arc::new(trace)),
            start: None,
            ends_chain: false,
        };
        self.push(session, rec, wait)
    }

    /// A resolution of this session that has not expired.
    pub(crate) fn resolution_for(
        &self,
        session: &Session,
        id: &uuid::Uuid,
        now: crate::time::Micros,
    ) -> Result<Arc<Resolution>> {
        match self.resolutions.get(id, now) {
            Lookup::Found(r) if r.session_id == session.session_id => Ok(r),
            Lookup::Expired => Err(CoreError::ResolutionExpired(id.to_string())),
            _ => Err(CoreError::ResolutionNotFound(id.to_string())),
        }
    }

    /// Checks an execute request; answers it, or returns a ticket to run.
    pub fn execute_begin(&self, v: &Value, wait: &impl Wait) -> Result<Begin> {
        match parse_request(v) {
            Ok(req) => self.execute_parsed(req, wait),
            Err(e) => self.with_error_event(session_hint(v), wait, || Err(e)),
        }
    }

    /// As `execute_begin`, for a request already parsed and checked
    /// against the schema.
    pub fn execute_parsed(&self, mut req: CarpRequest, wait: &impl Wait) -> Result<Begin> {
        self.with_error_event(Some(req.session_id), wait, || {
            if req.operation != Operation::Execute {
                return Err(CoreError::InvalidRequest(vec![Fault::new(
                    "/operation",
                    format!(
                        "execute takes operation \"execute\", not {:?}",
                        req.operation.as_str()
                    ),
                )]));
            }
            let exec = req.execution.take().ok_or_else(|| {
                CoreError::InvalidRequest(vec![Fault::new(
                    "/execution",
                    "is required when operation is \"execute\"",
                )])
            })?;
            let now = self.now();
            let session = self.admit(&req, now)?;
            let out = self.begin_checked(&req, exec, Arc::clone(&session), now, wait);
            if out.is_err() {
                session.release_request(&req.request_id);
            }
            out
        })
    }

    fn begin_checked(
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
            let reason = crate::resolution::DEFAULT_DENY_REASON;
            return ctx.deny(
                "ACTION_NOT_ALLOWED",
                crate::resolution::DEFAULT_DENY_ID,
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
                    Limit::None => crate::policy::Scope::Global,
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

    fn echo(
        &self,
        req: &CarpRequest,
        exec: &Execution,
        res: &Resolution,
        parameters: Arc<Value>,
    ) -> ExecEcho {
        ExecEcho {
            request_id: req.request_id,
            goal: Arc::clone(&req.goal),
            atlas_ids: res.echo.atlas_ids.clone(),
            risk_tier: req.risk_tier,
            context_hints: req.context_hints.clone(),
            required_capabilities: req.required_capabilities.clone(),
            action_id: Arc::from(exec.action_id.as_str()),
            resolution_id: res.resolution_id,
            parameters_hash: ParamsHash::new(parameters, self.algorithm()),
        }
    }

    /// Ends an execution with what its executor did.
    pub fn execute_finish(
        &self,
        t: Ticket,
        outcome: RunResult,
        duration_ms: f64,
        wait: &impl Wait,
    ) -> Result<Arc<ExecuteResponse>> {
        let (status, result, error, hashed, failure) = match outcome {
            RunResult::Returned(text) => {
                let text: Arc<str> = Arc::from(text);
                (
                    Status::Success,
                    Some(Arc::clone(&text)),
                    None,
                    Some(text),
                    None,
                )
            }
            RunResult::Failed {
                code,
                message,
                details,
            } => {
                let err = ExecError {
                    code,
                    message: message.clone(),
                    details,
                };
                (Status::Error, None, Some(err), None, Some((code, message)))
            }
            RunResult::NoExecutor => {
                self.limits.release(t.reservation);
                if let Some(p) = &t.grant {
                    self.approvals
                        .restore(&p.approval_id, &p.action_id, &p.parameters_hash);
                }
                let message = format!("no executor is registered for {}", t.echo.action_id);
                let err = ExecError {
                    code: "NO_EXECUTOR",
                    message: message.clone(),
                    details: json!({"action_id": &*t.echo.action_id}),
                };
                (
                    Status::Error,
                    None,
                    Some(err),
                    None,
                    Some(("NO_EXECUTOR", message)),
                )
            }
        };
        let ctx = Ctx {
            rt: self,
            session: t.session,
            resolution: t.resolution,
            echo: t.echo,
            execution_id: t.execution_id,
            key: t.idempotency_key,
            started: t.started,
        };
        let resp = ctx.response(status, error, result);
        ctx.answer(
            resp,
            Happened::Ran {
                duration_ms,
                result: hashed,
                algorithm: self.algorithm(),
                failure,
            },
            wait,
        )
    }
}

/// What an idempotency key is bound to: the action and its parameters.
fn idem_fingerprint(echo: &ExecEcho) -> Result<String> {
    Ok(format!(
        "{}\n{}",
        echo.action_id,
        echo.parameters_hash.get()?
    ))
}

fn unreachable_ok() -> Result<Begin> {
    Err(CoreError::invalid(
        "INTERNAL",
        "",
        "a limit refused without a reason",
    ))
}
