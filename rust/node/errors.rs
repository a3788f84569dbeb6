//! Core errors cross to JS as a napi error whose message is a marker and
//! the error as JSON; `node/index.js` turns it into a `CraError` with the
//! same `code`, `category`, `path` and `errors` as Python's exceptions.

use napi::{Error, Status};
use serde_json::{json, Value};

use crate::error::CoreError;

/// What starts the message of an error `index.js` rebuilds as a `CraError`.
pub const MARKER: &str = "\u{1}cra:";

/// The error's fields as JSON (the shape `index.js` reads).
pub fn fields(err: &CoreError) -> Value {
    let faults: Vec<Value> = err
        .faults()
        .iter()
        .map(|f| json!({"path": f.path, "message": f.message}))
        .collect();
    json!({
        "code": err.code(),
        "category": err.category().as_str(),
        "message": err.message(),
        "path": err.path(),
        "recoverable": err.recoverable(),
        "errors": faults,
    })
}

/// The napi error carrying a core error.
pub fn to_js(err: CoreError) -> Error {
    Error::new(Status::GenericFailure, format!("{MARKER}{}", fields(&err)))
}

/// A core-style error built here (an option or argument the glue checks).
pub fn invalid(code: &'static str, path: &str, why: impl Into<String>) -> Error {
    to_js(CoreError::invalid(code, path, why.into()))
}

pub trait IntoJsResult<T> {
    fn js(self) -> napi::Result<T>;
}

impl<T> IntoJsResult<T> for Result<T, CoreError> {
    #[inline]
    fn js(self) -> napi::Result<T> {
        self.map_err(to_js)
    }
}
