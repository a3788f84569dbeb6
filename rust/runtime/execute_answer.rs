//! How an execution is answered (CARP §5): the first step's outcome (an
//! answer now, or a ticket for the executor), the response, the events of
//! the execution in one record, and the answer kept for an idempotency key.

use std::sync::Arc;

use serde_json::Value;
use uuid::Uuid;

use crate::carp::approvals::Pending;
use crate::carp::execute::{
    idem_fingerprint, ExecEcho, ExecError, ExecuteResponse, Happened, Status,
};
use crate::carp::limits::Reservation;
use crate::carp::resolution::Resolution;
use crate::error::Result;
use crate::runtime::session::Session;
use crate::runtime::state::{Runtime, Wait};
use crate::time::Micros;

/// The first step of an execution: an answer now, or a ticket to run.
pub enum Begin {
    Answer(Arc<ExecuteResponse>),
    Run(Box<Ticket>),
}

/// A checked execution: everything passed, the executor has to run.
pub struct Ticket {
    pub session: Arc<Session>,
    pub resolution: Arc<Resolution>,
    pub echo: ExecEcho,
    pub execution_id: Uuid,
    pub executor: Option<Arc<str>>,
    pub parameters: Arc<Value>,
    pub reservation: Reservation,
    /// The once-grant this execution used (given back if it cannot run).
    pub grant: Option<Pending>,
    pub idempotency_key: Option<String>,
    pub started: Micros,
}

/// One execution on its way to an answer.
pub(crate) struct Ctx<'a> {
    pub rt: &'a Runtime,
    pub session: Arc<Session>,
    pub resolution: Arc<Resolution>,
    pub echo: ExecEcho,
    pub execution_id: Uuid,
    pub key: Option<String>,
    /// When the execution was admitted: all its events carry this time, so
    /// a replay counts it toward limits when the live runtime did.
    pub started: Micros,
}

impl Ctx<'_> {
    pub fn response(
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
    pub fn answer(
        self,
        resp: ExecuteResponse,
        happened: Happened,
        wait: &impl Wait,
    ) -> Result<Arc<ExecuteResponse>> {
        let resp = Arc::new(resp);
        if let Some(key) = &self.key {
            if matches!(resp.status, Status::Success | Status::Error) {
                let fp = idem_fingerprint(&self.echo)?;
                self.rt
                    .finish_key(&self.session, key, &fp, Arc::clone(&resp));
            } else {
                self.rt.drop_key(&self.session, key);
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

    pub fn deny(
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
