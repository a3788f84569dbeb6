//! The one error type of the core. Every variant knows its protocol code,
//! category, HTTP status and JSON-pointer path, so the Python layer, the CLI
//! and the server all report the same thing.

use std::fmt;

/// Error categories of the protocol, each with its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    Validation,
    Authentication,
    Authorization,
    NotFound,
    Conflict,
    Expired,
    Integrity,
    ApprovalRequired,
    RateLimited,
    Internal,
    Upstream,
    Unavailable,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Validation => "validation",
            Category::Authentication => "authentication",
            Category::Authorization => "authorization",
            Category::NotFound => "not_found",
            Category::Conflict => "conflict",
            Category::Expired => "expired",
            Category::Integrity => "integrity",
            Category::ApprovalRequired => "approval_required",
            Category::RateLimited => "rate_limited",
            Category::Internal => "internal",
            Category::Upstream => "upstream",
            Category::Unavailable => "unavailable",
        }
    }

    pub fn http_status(self) -> u16 {
        match self {
            Category::Validation => 400,
            Category::Authentication => 401,
            Category::Authorization => 403,
            Category::NotFound => 404,
            Category::Conflict => 409,
            Category::Expired => 410,
            Category::Integrity => 422,
            Category::ApprovalRequired => 423,
            Category::RateLimited => 429,
            Category::Internal => 500,
            Category::Upstream => 502,
            Category::Unavailable => 503,
        }
    }
}

/// One fault found while validating a document: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub path: String,
    pub message: String,
}

impl Fault {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Fault {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "(root): {}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum CoreError {
    /// A value given to the runtime is not acceptable (payload, id, option).
    #[error("{message} (at {path})")]
    InvalidValue {
        code: &'static str,
        path: String,
        message: String,
    },
    #[error("session {0} not found")]
    SessionNotFound(String),
    #[error("session {0} has ended")]
    SessionEnded(String),
    #[error("session {0} has ended ({1})")]
    SessionExpired(String, &'static str),
    #[error("session {0} already exists")]
    SessionExists(String),
    #[error("the trace recorder is closed")]
    RecorderClosed,
    #[error("trace sink failed: {0}")]
    Sink(String),
    /// The trace cannot take or keep events now (the store is failing, or
    /// the queue is full): nothing was acknowledged; retry later.
    #[error("the trace is unavailable: {0}")]
    TraceUnavailable(String),
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error("atlas is invalid: {}", summary(.0))]
    AtlasInvalid(Vec<Fault>),
    /// An atlas whose only faults are policy patterns that match no action
    /// of it or of the atlases it depends on.
    #[error("atlas is invalid: {}", summary(.0))]
    PolicyMatchesNothing(Vec<Fault>),
    #[error("request is invalid: {}", summary(.0))]
    InvalidRequest(Vec<Fault>),
    /// The id, and where the request named it.
    #[error("atlas {0} is not loaded")]
    AtlasNotFound(String, Option<String>),
    #[error("atlas {0} is already loaded (replace it to load another version)")]
    AtlasConflict(String),
    #[error("request {0} was already received in this session")]
    DuplicateRequest(String),
    #[error("resolution {0} not found in this session")]
    ResolutionNotFound(String),
    #[error("resolution {0} has expired; resolve again")]
    ResolutionExpired(String),
    #[error("approval {0} not found")]
    ApprovalNotFound(String),
    #[error("approval {0} has expired with its resolution")]
    ApprovalExpired(String),
    #[error("idempotency key {0:?} was used for another action or other parameters (or is still running)")]
    IdempotencyConflict(String),
}

fn io_missing(message: &str) -> bool {
    message.contains("os error 2)")
        || message.contains("No such file")
        || message.contains("no such file")
}

fn io_denied(message: &str) -> bool {
    message.contains("os error 13)") || message.contains("Permission denied")
}

fn summary(faults: &[Fault]) -> String {
    match faults {
        [] => "no details".into(),
        [one] => one.to_string(),
        [first, rest @ ..] => format!("{first} (and {} more)", rest.len()),
    }
}

pub type Result<T> = std::result::Result<T, CoreError>;

impl CoreError {
    pub fn invalid(
        code: &'static str,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        CoreError::InvalidValue {
            code,
            path: path.into(),
            message: message.into(),
        }
    }

    pub fn io(path: impl fmt::Display, err: impl fmt::Display) -> Self {
        CoreError::Io {
            path: path.to_string(),
            message: err.to_string(),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            CoreError::InvalidValue { code, .. } => code,
            CoreError::SessionNotFound(_) => "SESSION_NOT_FOUND",
            CoreError::SessionEnded(_) => "SESSION_ENDED",
            CoreError::SessionExpired(..) => "SESSION_EXPIRED",
            CoreError::SessionExists(_) => "SESSION_EXISTS",
            CoreError::RecorderClosed => "RECORDER_CLOSED",
            CoreError::Sink(_) => "TRACE_SINK_FAILED",
            CoreError::TraceUnavailable(_) => "TRACE_UNAVAILABLE",
            CoreError::Io { message, .. } if io_missing(message) => "FILE_NOT_FOUND",
            CoreError::Io { message, .. } if io_denied(message) => "PERMISSION_DENIED",
            CoreError::Io { .. } => "IO_ERROR",
            CoreError::AtlasInvalid(_) => "ATLAS_INVALID",
            CoreError::PolicyMatchesNothing(_) => "POLICY_MATCHES_NOTHING",
            CoreError::InvalidRequest(_) => "INVALID_REQUEST",
            CoreError::AtlasNotFound(..) => "ATLAS_NOT_FOUND",
            CoreError::AtlasConflict(_) => "ATLAS_ALREADY_LOADED",
            CoreError::DuplicateRequest(_) => "DUPLICATE_REQUEST",
            CoreError::ResolutionNotFound(_) => "RESOLUTION_NOT_FOUND",
            CoreError::ResolutionExpired(_) => "RESOLUTION_EXPIRED",
            CoreError::ApprovalNotFound(_) => "APPROVAL_NOT_FOUND",
            CoreError::ApprovalExpired(_) => "APPROVAL_EXPIRED",
            CoreError::IdempotencyConflict(_) => "IDEMPOTENCY_CONFLICT",
        }
    }

    pub fn category(&self) -> Category {
        match self {
            CoreError::InvalidValue { code, .. } => match *code {
                "CHAIN_INVALID" | "TRACE_INVALID" | "TRACE_TORN" => Category::Integrity,
                "INTERNAL" => Category::Internal,
                "EVENTS_EVICTED" => Category::NotFound,
                "AGENT_MISMATCH" => Category::Authorization,
                "TOO_MANY_PENDING" => Category::RateLimited,
                "PROOF_INVALID" | "SIGNATURE_INVALID" => Category::Integrity,
                "EVENT_NOT_FOUND" | "CHECKPOINT_NOT_FOUND" => Category::NotFound,
                _ => Category::Validation,
            },
            // A path the caller named that is not there, or not theirs, is
            // their input's fault, not the runtime's.
            CoreError::Io { message, .. } if io_missing(message) => Category::NotFound,
            CoreError::Io { message, .. } if io_denied(message) => Category::Authorization,
            CoreError::SessionNotFound(_) => Category::NotFound,
            CoreError::SessionEnded(_) | CoreError::SessionExpired(..) => Category::Expired,
            CoreError::SessionExists(_) => Category::Conflict,
            CoreError::TraceUnavailable(_) => Category::Unavailable,
            CoreError::RecorderClosed | CoreError::Sink(_) | CoreError::Io { .. } => {
                Category::Internal
            }
            CoreError::AtlasInvalid(_)
            | CoreError::PolicyMatchesNothing(_)
            | CoreError::InvalidRequest(_) => Category::Validation,
            CoreError::AtlasNotFound(..) => Category::NotFound,
            CoreError::AtlasConflict(_)
            | CoreError::DuplicateRequest(_)
            | CoreError::IdempotencyConflict(_) => Category::Conflict,
            CoreError::ResolutionNotFound(_) | CoreError::ApprovalNotFound(_) => Category::NotFound,
            CoreError::ResolutionExpired(_) | CoreError::ApprovalExpired(_) => Category::Expired,
        }
    }

    /// JSON pointer (or file path for I/O faults) of what is wrong, if any.
    pub fn path(&self) -> Option<&str> {
        match self {
            CoreError::InvalidValue { path, .. } | CoreError::Io { path, .. } => Some(path),
            CoreError::AtlasNotFound(_, path) => path.as_deref(),
            CoreError::AtlasInvalid(f)
            | CoreError::PolicyMatchesNothing(f)
            | CoreError::InvalidRequest(f) => f.first().map(|f| f.path.as_str()),
            _ => None,
        }
    }

    /// The plain message, without the path.
    pub fn message(&self) -> String {
        match self {
            CoreError::InvalidValue { message, .. } | CoreError::Io { message, .. } => {
                message.clone()
            }
            CoreError::AtlasInvalid(f)
            | CoreError::PolicyMatchesNothing(f)
            | CoreError::InvalidRequest(f) => match f.as_slice() {
                [one] => one.message.clone(),
                _ => format!("{} faults: {}", f.len(), summary(f)),
            },
            other => other.to_string(),
        }
    }

    /// Every fault, for errors that collect several.
    /// Every fault as `(path, message)`: the listed faults, or the error
    /// itself at its path.
    pub fn fault_pairs(&self) -> Vec<(String, String)> {
        match self.faults() {
            [] => vec![(self.path().unwrap_or_default().to_string(), self.message())],
            faults => faults
                .iter()
                .map(|f| (f.path.clone(), f.message.clone()))
                .collect(),
        }
    }

    pub fn faults(&self) -> &[Fault] {
        match self {
            CoreError::AtlasInvalid(f)
            | CoreError::PolicyMatchesNothing(f)
            | CoreError::InvalidRequest(f) => f,
            _ => &[],
        }
    }

    /// A sink failure clears by itself once the sink recovers.
    pub fn recoverable(&self) -> bool {
        matches!(
            self,
            CoreError::Sink(_) | CoreError::TraceUnavailable(_) | CoreError::ResolutionExpired(_)
        ) || matches!(
            self.category(),
            Category::RateLimited | Category::ApprovalRequired
        )
    }
}
