//! Idempotency keys kept by a store several runtimes share: a key claimed
//! through one replica is running, or done with its first response, for
//! every replica. The response travels as its wire JSON.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use serde_json::Value;
use uuid::Uuid;

use crate::carp::execute::{ExecError, ExecuteResponse, Status};
use crate::error::Result;
use crate::json::canonical::to_canonical;
use crate::time::parse_timestamp;

/// Where a key stands in the shared store.
pub enum KeyClaim {
    /// Claimed now, by this caller.
    Claimed,
    /// Claimed by another execution that has not answered.
    Running,
    /// Answered: its fingerprint and its response's wire JSON.
    Done(String, String),
}

pub trait SharedKeys: Send + Sync {
    fn claim(&self, session: &Uuid, key: &str, fingerprint: &str) -> Result<KeyClaim>;
    fn finish(&self, session: &Uuid, key: &str, response: &str) -> Result<()>;
    /// Frees a claimed key whose execution gave no terminal answer.
    fn drop_key(&self, session: &Uuid, key: &str) -> Result<()>;
}

/// Most distinct error codes a store may hand back (they are the core's own).
const MAX_CODES: usize = 1_000;

/// An error code as the `&'static str` a response holds: the same text is
/// stored once for the life of the process.
fn interned(code: &str) -> &'static str {
    static CODES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut codes = CODES.get_or_init(Default::default).lock();
    if let Some(c) = codes.get(code) {
        return c;
    }
    if codes.len() >= MAX_CODES {
        return "EXECUTION_FAILED";
    }
    let leaked: &'static str = Box::leak(code.to_string().into_boxed_str());
    codes.insert(leaked);
    leaked
}

/// A response from its wire JSON (`ExecuteResponse::to_value`).
pub fn response_from_json(text: &str) -> Option<ExecuteResponse> {
    let v: Value = serde_json::from_str(text).ok()?;
    let id = |k: &str| Uuid::parse_str(v.get(k)?.as_str()?).ok();
    let status = match v.get("status")?.as_str()? {
        "success" => Status::Success,
        "error" => Status::Error,
        "denied" => Status::Denied,
        "pending_approval" => Status::PendingApproval,
        _ => return None,
    };
    let result = match v.get("result") {
        None | Some(Value::Null) => None,
        Some(r) => Some(Arc::from(to_canonical(r).ok()?.as_str())),
    };
    let error = match v.get("error") {
        None | Some(Value::Null) => None,
        Some(e) => Some(ExecError {
            code: interned(e.get("code")?.as_str()?),
            message: e.get("message")?.as_str()?.to_string(),
            details: e.get("details").cloned().unwrap_or(Value::Null),
        }),
    };
    Some(ExecuteResponse {
        execution_id: id("execution_id")?,
        request_id: id("request_id")?,
        resolution_id: id("resolution_id")?,
        timestamp: parse_timestamp(v.get("timestamp")?.as_str()?, "/timestamp").ok()?,
        status,
        result,
        error,
        trace_id: id("trace_id")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_response_comes_back_from_its_wire_json() {
        let r = ExecuteResponse {
            execution_id: Uuid::now_v7(),
            request_id: Uuid::now_v7(),
            resolution_id: Uuid::now_v7(),
            timestamp: 1_765_000_000_123_456,
            status: Status::Error,
            result: Some(Arc::from("{\"a\":[1,2]}")),
            error: Some(ExecError {
                code: "EXECUTOR_FAILED",
                message: "boom".into(),
                details: json!({"k": 1}),
            }),
            trace_id: Uuid::now_v7(),
        };
        let text = r.to_value().to_string();
        let back = response_from_json(&text).expect("reads");
        assert_eq!(back.to_value(), r.to_value());
        assert!(response_from_json("{\"status\":\"nope\"}").is_none());
    }
}
