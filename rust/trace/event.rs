//! A sealed TRACE/1.0 event: numbered, hashed and chained.

use std::collections::BTreeSet;
use std::sync::Arc;

use parking_lot::Mutex;

use uuid::Uuid;

use crate::ids::write_uuid;
use crate::time::Stamp;
use crate::trace::hash::{to_hex, HashAlgorithm, HashInput};
use crate::trace::verify::EventText;

pub const TRACE_VERSION: &str = "1.0";

/// Event types the runtime itself emits; callers use the `x.` prefix.
pub const STANDARD_EVENT_TYPES: &[&str] = &[
    "session.started",
    "session.ended",
    "carp.request.received",
    "carp.resolution.completed",
    "carp.resolution.cached",
    "action.requested",
    "action.approved",
    "action.denied",
    "action.executed",
    "action.failed",
    "policy.evaluated",
    "policy.violated",
    "context.injected",
    "context.redacted",
    "error.occurred",
    "trace.checkpoint",
];

/// An event type: a protocol name (static) or a caller's `x.` type (shared,
/// so recording the same custom type again does not allocate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventType {
    Static(&'static str),
    Shared(Arc<str>),
}

impl std::ops::Deref for EventType {
    type Target = str;
    #[inline]
    fn deref(&self) -> &str {
        match self {
            EventType::Static(s) => s,
            EventType::Shared(s) => s,
        }
    }
}

/// How many custom event types, and how many bytes of them, are kept for
/// the life of the process (see [`EventType::custom`]).
const INTERNED_TYPES: usize = 1024;
const INTERNED_BYTES: usize = 64 * 1024;

impl EventType {
    /// A caller's `x.` type. The first [`INTERNED_TYPES`] distinct ones are
    /// kept for the life of the process, so recording one copies a pointer:
    /// a shared count would be raised by every record on the caller's
    /// thread and lowered on the flush thread, and that cache line going
    /// back and forth was the largest single cost of a `record()`. Past the
    /// bound (a process inventing types without end), types are shared.
    pub fn custom(text: &str) -> EventType {
        static KEPT: Mutex<(BTreeSet<&'static str>, usize)> = Mutex::new((BTreeSet::new(), 0));
        let mut kept = KEPT.lock();
        if let Some(&s) = kept.0.get(text) {
            return EventType::Static(s);
        }
        if kept.0.len() >= INTERNED_TYPES || kept.1 + text.len() > INTERNED_BYTES {
            return EventType::Shared(Arc::from(text));
        }
        let s: &'static str = Box::leak(Box::from(text));
        kept.0.insert(s);
        kept.1 += s.len();
        EventType::Static(s)
    }
}

impl From<&'static str> for EventType {
    fn from(s: &'static str) -> Self {
        EventType::Static(s)
    }
}

impl PartialEq<str> for EventType {
    fn eq(&self, other: &str) -> bool {
        &**self == other
    }
}

impl PartialEq<&str> for EventType {
    fn eq(&self, other: &&str) -> bool {
        &**self == *other
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEvent {
    pub event_id: Uuid,
    pub trace_id: Uuid,
    pub span_id: Uuid,
    pub parent_span_id: Option<Uuid>,
    pub session_id: Uuid,
    pub sequence: u64,
    /// The timestamp exactly as hashed and written.
    pub timestamp: Stamp,
    pub event_type: EventType,
    /// Canonical JSON of the payload, exactly as hashed and written.
    pub payload: Box<str>,
    pub event_hash: [u8; 32],
    pub previous_event_hash: [u8; 32],
}

/// Lower-case hex of a digest, on the stack.
fn hex_text<'b>(digest: &[u8; 32], buf: &'b mut [u8; 64]) -> &'b str {
    let _ = hex::encode_to_slice(digest, buf);
    // SAFETY: `encode_to_slice` fills the buffer with ASCII hex digits.
    unsafe { std::str::from_utf8_unchecked(buf) }
}

impl TraceEvent {
    /// Recomputes this event's hash from its fields.
    pub fn compute_hash(&self, algorithm: HashAlgorithm) -> [u8; 32] {
        self.with_text(|t| t.input.hash(algorithm))
    }

    /// Calls `f` with the event as the strings that are hashed and written.
    pub fn with_text<T>(&self, f: impl FnOnce(&EventText<'_>) -> T) -> T {
        let mut ids = [[0u8; 36]; 5];
        let [event, trace, span, parent, session] = &mut ids;
        let (mut prev, mut hash) = ([0u8; 64], [0u8; 64]);
        let hash = hex_text(&self.event_hash, &mut hash);
        let input = HashInput {
            trace_version: TRACE_VERSION,
            event_id: self.event_id.hyphenated().encode_lower(event),
            trace_id: self.trace_id.hyphenated().encode_lower(trace),
            span_id: self.span_id.hyphenated().encode_lower(span),
            parent_span_id: self
                .parent_span_id
                .as_ref()
                .map(|p| &*p.hyphenated().encode_lower(parent)),
            session_id: self.session_id.hyphenated().encode_lower(session),
            sequence: self.sequence,
            timestamp: self.timestamp.as_str(),
            event_type: &self.event_type,
            canonical_payload: &self.payload,
            previous_event_hash: hex_text(&self.previous_event_hash, &mut prev),
        };
        f(&EventText {
            input,
            event_hash: hash,
        })
    }

    /// Appends the event as one JSON object (no newline), fields in protocol order.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"trace_version\":\"1.0\",\"event_id\":\"");
        write_uuid(out, &self.event_id);
        out.extend_from_slice(b"\",\"trace_id\":\"");
        write_uuid(out, &self.trace_id);
        out.extend_from_slice(b"\",\"span_id\":\"");
        write_uuid(out, &self.span_id);
        out.extend_from_slice(b"\",\"parent_span_id\":");
        match &self.parent_span_id {
            Some(p) => {
                out.push(b'"');
                write_uuid(out, p);
                out.push(b'"');
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"session_id\":\"");
        write_uuid(out, &self.session_id);
        out.extend_from_slice(b"\",\"sequence\":");
        out.extend_from_slice(itoa::Buffer::new().format(self.sequence).as_bytes());
        out.extend_from_slice(b",\"timestamp\":\"");
        out.extend_from_slice(self.timestamp.as_bytes());
        out.extend_from_slice(b"\",\"event_type\":\"");
        out.extend_from_slice(self.event_type.as_bytes());
        out.extend_from_slice(b"\",\"payload\":");
        out.extend_from_slice(self.payload.as_bytes());
        out.extend_from_slice(b",\"event_hash\":\"");
        out.extend_from_slice(to_hex(&self.event_hash).as_bytes());
        out.extend_from_slice(b"\",\"previous_event_hash\":\"");
        out.extend_from_slice(to_hex(&self.previous_event_hash).as_bytes());
        out.extend_from_slice(b"\"}");
    }

    pub fn to_json(&self) -> String {
        let mut out = Vec::with_capacity(320 + self.payload.len());
        self.write_json(&mut out);
        String::from_utf8(out).expect("events are written as ASCII")
    }
}

/// True when `name` is a type callers may record (`x.` + letters, digits, `._:-`).
pub fn is_custom_event_type(name: &str) -> bool {
    name.len() > 2
        && name.len() <= 128
        && name.starts_with("x.")
        && name[2..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_types_are_kept_once_up_to_a_bound() {
        let a = EventType::custom("x.kept-once");
        let b = EventType::custom("x.kept-once");
        match (&a, &b) {
            (EventType::Static(x), EventType::Static(y)) => assert!(std::ptr::eq(*x, *y)),
            _ => panic!("a custom type within the bound is kept: {a:?} {b:?}"),
        }
        // A process that invents types without end gets shared ones past
        // the bound, equal to what was asked for.
        let many: Vec<EventType> = (0..INTERNED_TYPES + 10)
            .map(|i| EventType::custom(&format!("x.many-{i}")))
            .collect();
        assert!(matches!(many.last(), Some(EventType::Shared(_))));
        for (i, t) in many.iter().enumerate() {
            assert_eq!(&**t, format!("x.many-{i}"));
        }
        assert!(matches!(
            EventType::custom("x.kept-once"),
            EventType::Static(_)
        ));
    }
}
