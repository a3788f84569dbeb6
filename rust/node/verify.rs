//! The addon's free functions: verifying a trace file or a chain, the
//! TRACE/1.0 event hash, checking a CARP request, the version.

use std::path::PathBuf;

use napi::bindgen_prelude::AsyncTask;
use napi_derive::napi;
use serde_json::Value;

use crate::carp::request::parse_request;
use crate::json::canonical::text::text_to_canonical;
use crate::trace::hash::{to_hex, HashAlgorithm, HashInput};
use crate::trace::verify_file::verify_chain_texts;

use super::errors::{invalid, IntoJsResult};
use super::reports;
use super::tasks::VerifyFile;

/// The crate's version (that of `Cargo.toml`).
#[napi]
pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// Verifies a `.trace.jsonl` file off the JS thread; the report as JSON text.
#[napi(ts_return_type = "Promise<string>")]
pub fn verify_jsonl(path: String, use_sidecar: Option<bool>) -> AsyncTask<VerifyFile> {
    AsyncTask::new(VerifyFile {
        path: PathBuf::from(path),
        use_sidecar: use_sidecar.unwrap_or(true),
    })
}

/// Verifies one chain given as event JSON texts, in order; the report as JSON text.
#[napi]
pub fn verify_chain(events: Vec<String>) -> napi::Result<String> {
    let report = verify_chain_texts(events.iter().map(|e| e.as_bytes()), None).js()?;
    Ok(reports::chain(&report).to_string())
}

fn field<'a>(event: &'a Value, name: &str) -> napi::Result<&'a str> {
    event
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("INVALID_EVENT", &format!("/{name}"), "must be a string"))
}

/// The TRACE/1.0 hash of an event given as JSON text (its `payload` is
/// hashed as canonical JSON).
#[napi]
pub fn event_hash(algorithm: String, event: String) -> napi::Result<String> {
    let alg = HashAlgorithm::parse(&algorithm).js()?;
    let v: Value = serde_json::from_str(&event)
        .map_err(|e| invalid("INVALID_EVENT", "", format!("not JSON: {e}")))?;
    let payload = v
        .get("payload")
        .filter(|p| p.is_object())
        .ok_or_else(|| invalid("INVALID_EVENT", "/payload", "must be an object"))?;
    let canonical = text_to_canonical(&payload.to_string()).js()?;
    let sequence = v
        .get("sequence")
        .and_then(Value::as_u64)
        .ok_or_else(|| invalid("INVALID_EVENT", "/sequence", "must be an integer >= 0"))?;
    let input = HashInput {
        trace_version: field(&v, "trace_version")?,
        event_id: field(&v, "event_id")?,
        trace_id: field(&v, "trace_id")?,
        span_id: field(&v, "span_id")?,
        parent_span_id: v.get("parent_span_id").and_then(Value::as_str),
        session_id: field(&v, "session_id")?,
        sequence,
        timestamp: field(&v, "timestamp")?,
        event_type: field(&v, "event_type")?,
        canonical_payload: &canonical,
        previous_event_hash: field(&v, "previous_event_hash")?,
    };
    Ok(to_hex(&input.hash(alg)))
}

/// The faults of a CARP request given as JSON text, as a JSON array of
/// `{path, message}`; empty when valid.
#[napi]
pub fn check_request(request: String) -> String {
    let faults = match serde_json::from_str::<Value>(&request) {
        Err(e) => vec![(String::new(), format!("not JSON: {e}"))],
        Ok(v) => match parse_request(&v) {
            Ok(_) => Vec::new(),
            Err(e) => e.fault_pairs(),
        },
    };
    let list: Vec<Value> = faults
        .into_iter()
        .map(|(p, m)| serde_json::json!({"path": p, "message": m}))
        .collect();
    Value::Array(list).to_string()
}
