//! What can go wrong with a store's SQLite file, typed: the flush thread
//! turns it into the core's sink error (`TRACE_SINK_FAILED`, kept and
//! retried); `cra._core` raises it as the `sqlite3` exception Python's own
//! driver would have raised, so `SQLiteStore` keeps its API.

use rusqlite::ffi::ErrorCode;

use crate::error::CoreError;

/// Which kind of SQLite failure, as `sqlite3`'s exception classes tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqliteFault {
    /// A constraint failed (an event already stored): the batch is refused whole.
    Constraint,
    /// The file, its locks, the disk: the same batch may succeed later.
    Operational,
    /// A statement the caller gave is wrong (bad SQL, wrong parameters).
    Programming,
    /// Anything else SQLite reports about the database.
    Database,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum SqliteError {
    /// SQLite refused or failed a statement (`code`: SQLite's extended
    /// result code, 0 when the failure is rusqlite's own).
    #[error("{path}: {message}")]
    Sqlite {
        path: String,
        fault: SqliteFault,
        code: i32,
        message: String,
    },
    /// An event of the batch lacks a field the store indexes, or has one of
    /// a type SQLite cannot hold.
    #[error("event {index} of the batch: {message}")]
    Event { index: usize, message: String },
    /// The store's connection was closed.
    #[error("{0}: the store is closed")]
    Closed(String),
}

pub type SqliteResult<T> = std::result::Result<T, SqliteError>;

impl SqliteError {
    pub fn from_sqlite(path: &str, err: rusqlite::Error) -> Self {
        let (fault, code) = match &err {
            rusqlite::Error::SqliteFailure(e, _) => (fault_of(e.code), e.extended_code),
            rusqlite::Error::SqlInputError { error, .. } => {
                (SqliteFault::Programming, error.extended_code)
            }
            rusqlite::Error::InvalidParameterCount(..)
            | rusqlite::Error::InvalidParameterName(_)
            | rusqlite::Error::MultipleStatement
            | rusqlite::Error::ExecuteReturnedResults
            | rusqlite::Error::InvalidColumnIndex(_)
            | rusqlite::Error::InvalidColumnName(_) => (SqliteFault::Programming, 0),
            _ => (SqliteFault::Database, 0),
        };
        SqliteError::Sqlite {
            path: path.to_string(),
            fault,
            code,
            message: err.to_string(),
        }
    }

    pub fn event(index: usize, message: impl Into<String>) -> Self {
        SqliteError::Event {
            index,
            message: message.into(),
        }
    }

    /// The error's code in cra's vocabulary (`specs/errors.md` style).
    pub fn code(&self) -> &'static str {
        match self {
            SqliteError::Sqlite { fault, .. } => match fault {
                SqliteFault::Constraint => "STORE_CONSTRAINT",
                SqliteFault::Operational => "STORE_UNAVAILABLE",
                SqliteFault::Programming => "STORE_STATEMENT_INVALID",
                SqliteFault::Database => "STORE_FAILED",
            },
            SqliteError::Event { .. } => "INVALID_EVENT",
            SqliteError::Closed(_) => "STORE_CLOSED",
        }
    }
}

fn fault_of(code: ErrorCode) -> SqliteFault {
    match code {
        ErrorCode::ConstraintViolation => SqliteFault::Constraint,
        ErrorCode::DatabaseBusy
        | ErrorCode::DatabaseLocked
        | ErrorCode::SystemIoFailure
        | ErrorCode::DiskFull
        | ErrorCode::CannotOpen
        | ErrorCode::ReadOnly
        | ErrorCode::PermissionDenied
        | ErrorCode::FileLockingProtocolFailed
        | ErrorCode::OperationInterrupted
        | ErrorCode::OperationAborted
        | ErrorCode::OutOfMemory => SqliteFault::Operational,
        ErrorCode::ApiMisuse | ErrorCode::TypeMismatch | ErrorCode::ParameterOutOfRange => {
            SqliteFault::Programming
        }
        _ => SqliteFault::Database,
    }
}

/// On the flush thread a store's failure is a sink failure: the batch is
/// kept and written again, and the next `flush()` raises it once.
impl From<SqliteError> for CoreError {
    fn from(err: SqliteError) -> Self {
        CoreError::Sink(format!("SQLite store [{}] {err}", err.code()))
    }
}
