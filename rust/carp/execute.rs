//! Execute (CARP §5) as values: the response, what the request said and
//! what happened (for the trace), the parameters hash an idempotency key
//! is bound to, and an executor's outcome.

use std::sync::{Arc, OnceLock};

use serde_json::{json, Value};
use uuid::Uuid;

use crate::error::Result;
use crate::json::canonical::to_canonical;
use crate::time::{format_timestamp, Micros};
use crate::trace::hash::{to_hex, HashAlgorithm};

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
        algorithm: crate::trace::hash::HashAlgorithm,
        failure: Option<(&'static str, String)>,
    },
}

/// What the request said, for `carp.request.received`.
#[derive(Debug, Clone)]
pub struct ExecEcho {
    pub request_id: Uuid,
    pub goal: Arc<str>,
    pub atlas_ids: Vec<Arc<str>>,
    pub risk_tier: Option<crate::atlas::policy::RiskTier>,
    pub context_hints: Option<Vec<String>>,
    pub required_capabilities: Option<Vec<String>>,
    pub action_id: Arc<str>,
    pub resolution_id: Uuid,
    pub parameters_hash: ParamsHash,
    /// The action's trace settings, once execute has found the action
    /// loaded; `None`: hashes only.
    pub trace: Option<Arc<crate::atlas::model::TraceSpec>>,
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

    /// The parameters as given (the trace records them only as the
    /// action's `trace_parameters` says).
    pub fn parameters(&self) -> &Value {
        &self.parameters
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

impl RunResult {
    /// The outcome of a started execution whose executor's outcome was
    /// never reported (its ticket was dropped): a failure, so the trace
    /// never holds a started execution without an outcome.
    pub fn abandoned() -> RunResult {
        RunResult::Failed {
            code: "EXECUTION_FAILED",
            message: "abandoned: the executor's outcome was never reported".into(),
            details: Value::Object(Default::default()),
        }
    }
}

/// What an idempotency key is bound to: the action and its parameters.
pub(crate) fn idem_fingerprint(echo: &ExecEcho) -> Result<String> {
    Ok(format!(
        "{}\n{}",
        echo.action_id,
        echo.parameters_hash.get()?
    ))
}
