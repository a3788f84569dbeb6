//! Execute: the response, what happened (for the trace), and the ticket of
//! a checked execution waiting for its executor.

use std::sync::{Arc, OnceLock};

use serde_json::{json, Value};
use uuid::Uuid;

use crate::approvals::Pending;
use crate::canonical::to_canonical;
use crate::error::Result;
use crate::hash::{to_hex, HashAlgorithm};
use crate::limits::Reservation;
use crate::resolution::Resolution;
use crate::session::Session;
use crate::time::{format_timestamp, Micros};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Success,
    Error,
    Denied,
    PendingApproval,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::Error => "error",
            Status::Denied => "denied",
            Status::PendingApproval => "pending_approval",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ExecError {
    pub code: &'static str,
    pub message: String,
    pub details: Value,
}

#[derive(Debug, Clone)]
pub struct ExecuteResponse {
    pub execution_id: Uuid,
    pub request_id: Uuid,
    pub resolution_id: Uuid,
    pub timestamp: Micros,
    pub status: Status,
    /// Canonical JSON of the executor's result.
    pub result: Option<Arc<str>>,
    pub error: Option<ExecError>,
    pub trace_id: Uuid,
}

impl ExecuteResponse {
    pub fn to_value(&self) -> Value {
        let result: Value = self
            .result
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok())
            .unwrap_or(Value::Null);
        json!({
            "carp_version": "1.0",
            "execution_id": self.execution_id.to_string(),
            "request_id": self.request_id.to_string(),
            "resolution_id": self.resolution_id.to_string(),
            "timestamp": format_timestamp(self.timestamp),
            "status": self.status.as_str(),
            "result": result,
            "error": self.error.as_ref().map(|e| json!({"code": e.code, "message": e.message, "details": e.details})),
            "trace_id": self.trace_id.to_string(),
        })
    }

    /// Seconds until a rate limit has room again, if that is why it was denied.
    pub fn retry_after(&self) -> Option<f64> {
        self.error.as_ref()?.details.get("retry_after")?.as_f64()
    }
}

/// How an execution ended, for its events.
#[derive(Debug, Clone)]
pub enum Happened {
    /// An idempotent repeat answered with the first response.
    Replayed,
    Denied {
        policy_id: Arc<str>,
        reason: String,
        /// `policy.violated`: (violation type, details).
        violation: Option<(&'static str, Value)>,
    },
    Pending {
        policy_id: Arc<str>,
    },
    Ran {
        duration_ms: f64,
        /// The result's canonical JSON; its `result_hash` is computed when
        /// the event is rendered (on the flush thread), with `algorithm`.
        result: Option<Arc<str>>,
        algorithm: crate::hash::HashAlgorithm,
        failure: Option<(&'static str, String)>,
    },
}

/// What the request said, for `carp.request.received`.
#[derive(Debug, Clone)]
pub struct ExecEcho {
    pub request_id: Uuid,
    pub goal: Arc<str>,
    pub atlas_ids: Vec<Arc<str>>,
    pub risk_tier: Option<crate::policy::RiskTier>,
    pub context_hints: Option<Vec<String>>,
    pub required_capabilities: Option<Vec<String>>,
    pub action_id: Arc<str>,
    pub resolution_id: Uuid,
    pub parameters_hash: ParamsHash,
}

/// `parameters_hash` of an execution, made when first asked for: on the
/// caller's thread when an approval gate or an idempotency key needs it,
/// otherwise on the flush thread as it writes `action.requested`.
#[derive(Debug, Clone)]
pub struct ParamsHash {
    parameters: Arc<Value>,
    algorithm: HashAlgorithm,
    hex: OnceLock<Box<str>>,
}

impl ParamsHash {
    pub fn new(parameters: Arc<Value>, algorithm: HashAlgorithm) -> Self {
        ParamsHash {
            parameters,
            algorithm,
            hex: OnceLock::new(),
        }
    }

    /// The hash (hex) of the parameters' canonical JSON.
    pub fn get(&self) -> Result<&str> {
        if let Some(hex) = self.hex.get() {
            return Ok(hex);
        }
        let text = to_canonical(&self.parameters)?;
        let hex = to_hex(&self.algorithm.digest(text.as_bytes()));
        Ok(self.hex.get_or_init(|| hex.into()))
    }

    /// As `get`, for rendering events: parameters that passed the request
    /// checks always have a canonical form (the depth limit was applied as
    /// they were read), so the empty text is never written in practice.
    pub fn or_empty(&self) -> &str {
        self.get().unwrap_or("")
    }
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

/// The outcome of an executor.
pub enum RunResult {
    /// Canonical JSON of the returned value.
    Returned(Box<str>),
    Failed {
        code: &'static str,
        message: String,
        details: Value,
    },
    NoExecutor,
}
