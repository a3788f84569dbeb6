//! One event as the SQLite store reads it: a sealed core event (what the
//! flush thread hands a sink) or the JSON text of one (what a caller may
//! hand `SQLiteStore.write_batch`). The store indexes the session id,
//! sequence and event type, keeps the text, and reads a few more fields
//! for the session's row; a sealed event's are read without parsing.

use std::sync::Arc;

use rusqlite::types::Value;
use serde_json::Value as Json;

use crate::sqlite::error::{SqliteError, SqliteResult};
use crate::trace::event::TraceEvent;

enum Source {
    Sealed(Arc<TraceEvent>),
    Parsed(Json),
}

pub struct StoreEvent {
    pub session_id: String,
    pub sequence: i64,
    pub event_type: String,
    /// The event's JSON, exactly as stored.
    pub text: String,
    source: Source,
}

/// What an event says about its session's row besides the counters (read
/// for `session.started`, `session.ended` and a session's first event).
pub struct RowFields {
    pub span_id: Value,
    pub agent_id: Value,
    pub goal: Value,
    pub timestamp: Value,
}

fn hex(bytes: &[u8; 32]) -> Value {
    Value::Text(crate::trace::hash::to_hex(bytes))
}

/// A JSON value as SQLite holds it (as Python's sqlite3 binds the decoded value).
fn sql_value(v: &Json) -> Result<Value, String> {
    Ok(match v {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Integer(i64::from(*b)),
        Json::String(s) => Value::Text(s.clone()),
        Json::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Value::Integer(i),
            (None, Some(_), _) => return Err(format!("{n} is too large for SQLite")),
            (None, None, Some(f)) => Value::Real(f),
            _ => return Err(format!("{n} is not a number SQLite can hold")),
        },
        Json::Array(_) | Json::Object(_) => {
            return Err("an array or object cannot be a column of the sessions table".into())
        }
    })
}

impl StoreEvent {
    pub fn sealed(e: &Arc<TraceEvent>) -> Self {
        StoreEvent {
            session_id: e.session_id.to_string(),
            sequence: e.sequence as i64,
            event_type: e.event_type.to_string(),
            text: e.to_json(),
            source: Source::Sealed(Arc::clone(e)),
        }
    }

    /// An event from its JSON text (the `index`-th of its batch).
    pub fn from_text(index: usize, text: String) -> SqliteResult<Self> {
        let bad = |m: String| SqliteError::event(index, m);
        let json: Json = serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
        let string = |key: &str| match json.get(key) {
            Some(Json::String(s)) => Ok(s.clone()),
            _ => Err(bad(format!("{key:?} must be a string"))),
        };
        let session_id = string("session_id")?;
        let event_type = string("event_type")?;
        let sequence = json
            .get("sequence")
            .and_then(Json::as_i64)
            .ok_or_else(|| bad("\"sequence\" must be an integer".into()))?;
        Ok(StoreEvent {
            session_id,
            sequence,
            event_type,
            text,
            source: Source::Parsed(json),
        })
    }

    /// A field of a parsed event as SQLite holds it (it must be there).
    fn field(json: &Json, key: &str, index: usize) -> SqliteResult<Value> {
        let v = json
            .get(key)
            .ok_or_else(|| SqliteError::event(index, format!("{key:?} is missing")))?;
        sql_value(v).map_err(|m| SqliteError::event(index, format!("{key:?}: {m}")))
    }

    pub fn trace_id(&self, index: usize) -> SqliteResult<Value> {
        match &self.source {
            Source::Sealed(e) => Ok(Value::Text(e.trace_id.to_string())),
            Source::Parsed(j) => Self::field(j, "trace_id", index),
        }
    }

    pub fn event_hash(&self, index: usize) -> SqliteResult<Value> {
        match &self.source {
            Source::Sealed(e) => Ok(hex(&e.event_hash)),
            Source::Parsed(j) => Self::field(j, "event_hash", index),
        }
    }

    pub fn timestamp(&self, index: usize) -> SqliteResult<Value> {
        match &self.source {
            Source::Sealed(e) => Ok(Value::Text(e.timestamp.as_str().to_string())),
            Source::Parsed(j) => Self::field(j, "timestamp", index),
        }
    }

    /// The fields a row takes from this event (see [`RowFields`]); only a
    /// `session.started` event's span and payload are read (decoded here,
    /// for the few events that need it).
    pub fn fields(&self, index: usize) -> SqliteResult<RowFields> {
        let timestamp = self.timestamp(index)?;
        if self.event_type != "session.started" {
            return Ok(RowFields {
                span_id: Value::Null,
                agent_id: Value::Null,
                goal: Value::Null,
                timestamp,
            });
        }
        let bad = |m: String| SqliteError::event(index, m);
        let parsed;
        let (span_id, payload) = match &self.source {
            Source::Sealed(e) => {
                parsed = serde_json::from_str::<Json>(&e.payload)
                    .map_err(|e| bad(format!("payload: {e}")))?;
                (Value::Text(e.span_id.to_string()), &parsed)
            }
            Source::Parsed(j) => (
                Self::field(j, "span_id", index)?,
                j.get("payload")
                    .ok_or_else(|| bad("\"payload\" is missing".into()))?,
            ),
        };
        let Json::Object(map) = payload else {
            return Err(bad("\"payload\" must be an object".into()));
        };
        let of_payload = |key: &str| match map.get(key) {
            Some(v) => sql_value(v).map_err(|m| bad(format!("payload {key:?}: {m}"))),
            None => Ok(Value::Null),
        };
        Ok(RowFields {
            span_id,
            agent_id: of_payload("agent_id")?,
            goal: of_payload("goal")?,
            timestamp,
        })
    }
}
