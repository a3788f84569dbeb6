//! The execute operation on the runtime (CARP §5): the entry points, from
//! a request to a ticket or an answer and from an executor's outcome to
//! the answer, and the one record that holds all of an execution's events.
//! The checks themselves are in `execute_checks`, the answering in
//! `execute_answer`.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::carp::execute::{
    ExecEcho, ExecError, ExecuteResponse, Happened, ParamsHash, RunResult, Status,
};
use crate::carp::execute_events::ExecuteTrace;
use crate::carp::redact::redact_secrets;
use crate::carp::request::{parse_request, session_hint, CarpRequest, Execution, Operation};
use crate::carp::resolution::Resolution;
use crate::carp::resolution_store::Lookup;
use crate::error::{CoreError, Fault, Result};
use crate::ids::new_v7;
use crate::runtime::execute_answer::{Begin, Ctx, Ticket};
use crate::runtime::session::Session;
use crate::runtime::state::{Runtime, Wait};
use crate::time::Micros;
use crate::trace::chain::{Body, Record, SpanRef};

impl Runtime {
    /// Pushes one record holding all events of an execution.
    pub(crate) fn push_execution(
        &self,
        session: &Session,
        echo: ExecEcho,
        execution_id: uuid::Uuid,
        happened: Happened,
        now: Micros,
        wait: &impl Wait,
    ) -> Result<()> {
        let trace = ExecuteTrace {
            echo,
            execution_id,
            happened,
            key: Arc::clone(&self.config().redaction.key),
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
        now: Micros,
    ) -> Result<Arc<Resolution>> {
        match self.resolutions.get(id, now) {
            Lookup::Found(r) if r.session_id == session.session_id => Ok(r),
            Lookup::Expired => Err(CoreError::ResolutionExpired(id.to_string())),
            Lookup::Missing => self
                .shared_resolution(session, id, now)?
                .ok_or_else(|| CoreError::ResolutionNotFound(id.to_string())),
            Lookup::Found(_) => Err(CoreError::ResolutionNotFound(id.to_string())),
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

    pub(crate) fn echo(
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
            trace: None,
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
                // The trace gets the text through the secret detector,
                // always; the answer too, unless `expose_errors` is set.
                let traced = redact_secrets(&message).into_owned();
                let shown = if self.config().redaction.expose_errors {
                    message
                } else {
                    traced.clone()
                };
                let err = ExecError {
                    code,
                    message: shown,
                    details,
                };
                (Status::Error, None, Some(err), None, Some((code, traced)))
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
