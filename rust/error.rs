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
    #[error("session {0} already exists")]
    SessionExists(String),
    #[error("the trace recorder is closed")]
    RecorderClosed,
    #[error("trace sink failed: {0}")]
    Sink(String),
    #[error("{path}: {message}")]
    Io { path: String, message: String },
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
            CoreError::SessionExists(_) => "SESSION_EXISTS",
            CoreError::RecorderClosed => "RECORDER_CLOSED",
            CoreError::Sink(_) => "TRACE_SINK_FAILED",
            CoreError::Io { .. } => "IO_ERROR",
        }
    }

    pub fn category(&self) -> Category {
        match self {
            CoreError::InvalidValue { .. } => Category::Validation,
            CoreError::SessionNotFound(_) => Category::NotFound,
            CoreError::SessionEnded(_) => Category::Expired,
            CoreError::SessionExists(_) => Category::Conflict,
            CoreError::RecorderClosed | CoreError::Sink(_) | CoreError::Io { .. } => {
                Category::Internal
            }
        }
    }

    /// JSON pointer (or file path for I/O faults) of what is wrong, if any.
    pub fn path(&self) -> Option<&str> {
        match self {
            CoreError::InvalidValue { path, .. } | CoreError::Io { path, .. } => Some(path),
            _ => None,
        }
    }

    /// The plain message, without the path.
    pub fn message(&self) -> String {
        match self {
            CoreError::InvalidValue { message, .. } | CoreError::Io { message, .. } => {
                message.clone()
            }
            other => other.to_string(),
        }
    }

    /// A sink failure clears by itself once the sink recovers.
    pub fn recoverable(&self) -> bool {
        matches!(self, CoreError::Sink(_))
            || matches!(
                self.category(),
                Category::RateLimited | Category::ApprovalRequired
            )
    }
}
