//! Events read back from a trace (a file or memory) for replay, diff and
//! state reconstruction: the fields those need, parsed once.

use serde_json::Value;

use crate::error::{CoreError, Result};
use crate::time::{parse_timestamp, Micros};

#[derive(Debug, Clone)]
pub struct Recorded {
    pub session_id: String,
    pub trace_id: String,
    pub span_id: String,
    pub sequence: u64,
    pub timestamp: String,
    pub micros: Micros,
    pub event_type: String,
    pub payload: Value,
    /// The whole event as read (for diffs).
    pub raw: Value,
}

fn field<'a>(v: &'a Value, key: &str, i: usize) -> Result<&'a str> {
    v.get(key).and_then(Value::as_str).ok_or_else(|| {
        CoreError::invalid(
            "TRACE_INVALID",
            format!("/{i}/{key}"),
            format!("event {i} has no string {key}"),
        )
    })
}

impl Recorded {
    pub fn from_value(v: Value, i: usize) -> Result<Recorded> {
        let timestamp = field(&v, "timestamp", i)?.to_string();
        let micros = parse_timestamp(&timestamp, &format!("/{i}/timestamp")).map_err(|e| {
            CoreError::invalid("TRACE_INVALID", format!("/{i}/timestamp"), e.message())
        })?;
        Ok(Recorded {
            session_id: field(&v, "session_id", i)?.to_string(),
            trace_id: field(&v, "trace_id", i)?.to_string(),
            span_id: field(&v, "span_id", i)?.to_string(),
            sequence: v.get("sequence").and_then(Value::as_u64).ok_or_else(|| {
                CoreError::invalid(
                    "TRACE_INVALID",
                    format!("/{i}/sequence"),
                    "missing sequence",
                )
            })?,
            event_type: field(&v, "event_type", i)?.to_string(),
            payload: v.get("payload").cloned().unwrap_or(Value::Null),
            timestamp,
            micros,
            raw: v,
        })
    }

    /// Parses events given as JSON texts (one event each).
    pub fn parse_all<'a>(texts: impl IntoIterator<Item = &'a str>) -> Result<Vec<Recorded>> {
        texts
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                let v: Value = serde_json::from_str(t).map_err(|e| {
                    CoreError::invalid("TRACE_INVALID", format!("/{i}"), format!("not JSON: {e}"))
                })?;
                Recorded::from_value(v, i)
            })
            .collect()
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        self.payload.get(key).and_then(Value::as_str)
    }

    pub fn strings(&self, key: &str) -> Option<Vec<String>> {
        self.payload.get(key)?.as_array().map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
    }
}
