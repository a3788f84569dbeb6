//! Streaming verification of a `.trace.jsonl` file: constant memory per
//! session, sessions interleaved, a torn last line reported.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::canonical::text_to_canonical;
use crate::error::{CoreError, Result};
use crate::hash::HashInput;
use crate::verify::{ChainVerification, ChainVerifier, EventText};

/// One event line, borrowed from the line where possible.
#[derive(Deserialize)]
pub struct RawEvent<'a> {
    #[serde(borrow)]
    pub trace_version: Cow<'a, str>,
    #[serde(borrow)]
    pub event_id: Cow<'a, str>,
    #[serde(borrow)]
    pub trace_id: Cow<'a, str>,
    #[serde(borrow)]
    pub span_id: Cow<'a, str>,
    #[serde(borrow)]
    pub parent_span_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub session_id: Cow<'a, str>,
    pub sequence: u64,
    #[serde(borrow)]
    pub timestamp: Cow<'a, str>,
    #[serde(borrow)]
    pub event_type: Cow<'a, str>,
    #[serde(borrow)]
    pub payload: &'a RawValue,
    #[serde(borrow)]
    pub event_hash: Cow<'a, str>,
    #[serde(borrow)]
    pub previous_event_hash: Cow<'a, str>,
}

impl<'a> RawEvent<'a> {
    pub fn parse(line: &'a [u8]) -> std::result::Result<Self, String> {
        serde_json::from_slice(line).map_err(|e| e.to_string())
    }

    /// The canonical payload text (re-serialised, so any writer's spacing works).
    pub fn canonical_payload(&self) -> std::result::Result<String, String> {
        let text = self.payload.get();
        if !text.starts_with('{') {
            return Err("payload is not a JSON object".into());
        }
        text_to_canonical(text).map_err(|e| e.to_string())
    }

    pub fn text<'b>(&'b self, payload: &'b str) -> EventText<'b> {
        EventText {
            input: HashInput {
                trace_version: &self.trace_version,
                event_id: &self.event_id,
                trace_id: &self.trace_id,
                span_id: &self.span_id,
                parent_span_id: self.parent_span_id.as_deref(),
                session_id: &self.session_id,
                sequence: self.sequence,
                timestamp: &self.timestamp,
                event_type: &self.event_type,
                canonical_payload: payload,
                previous_event_hash: &self.previous_event_hash,
            },
            event_hash: &self.event_hash,
        }
    }
}

/// A line that is not an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    pub line: u64,
    pub message: String,
}

/// A last line cut short (no final newline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    pub line: u64,
    pub offset: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Default)]
pub struct FileVerification {
    /// One result per session, in order of first appearance.
    pub sessions: Vec<ChainVerification>,
    pub bad_lines: Vec<BadLine>,
    /// All bad lines, including those past the kept ones.
    pub bad_line_count: u64,
    pub torn_tail: Option<TornTail>,
    pub lines: u64,
    pub bytes: u64,
}

impl FileVerification {
    pub fn valid(&self) -> bool {
        self.bad_line_count == 0
            && self.torn_tail.is_none()
            && self.sessions.iter().all(ChainVerification::valid)
    }

    pub fn event_count(&self) -> u64 {
        self.sessions.iter().map(|s| s.event_count).sum()
    }
}

/// Verifies a trace file. `progress` is called with bytes read so far.
pub fn verify_file(path: &Path, progress: &mut dyn FnMut(u64)) -> Result<FileVerification> {
    let file = File::open(path).map_err(|e| CoreError::io(path.display(), e))?;
    verify_reader(file, progress).map_err(|e| match e {
        CoreError::Io { message, .. } => CoreError::io(path.display(), message),
        other => other,
    })
}

/// Keeps at most this many bad lines in the report (all are counted).
const MAX_BAD_LINES: usize = 100;

pub fn verify_reader(reader: impl Read, progress: &mut dyn FnMut(u64)) -> Result<FileVerification> {
    let mut reader = BufReader::with_capacity(1 << 20, reader);
    let mut chains: HashMap<String, usize> = HashMap::new();
    let mut verifiers: Vec<ChainVerifier> = Vec::new();
    let mut out = FileVerification::default();
    let mut line = Vec::with_capacity(4096);
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| CoreError::io("<trace>", e))?;
        if n == 0 {
            break;
        }
        out.lines += 1;
        let offset = out.bytes;
        out.bytes += n as u64;
        if out.lines % 65_536 == 0 {
            progress(out.bytes);
        }
        if line.last() != Some(&b'\n') {
            out.torn_tail = Some(TornTail {
                line: out.lines,
                offset,
                bytes: n as u64,
            });
            break;
        }
        let body = trim_line(&line);
        if body.is_empty() {
            continue;
        }
        let mut bad = |message: String| {
            out.bad_line_count += 1;
            if out.bad_lines.len() < MAX_BAD_LINES {
                out.bad_lines.push(BadLine {
                    line: out.lines,
                    message,
                });
            }
        };
        let ev = match RawEvent::parse(body) {
            Ok(ev) => ev,
            Err(message) => {
                bad(format!("not a TRACE event: {message}"));
                continue;
            }
        };
        let slot = match chains.get(ev.session_id.as_ref()) {
            Some(&i) => i,
            None => {
                chains.insert(ev.session_id.to_string(), verifiers.len());
                verifiers.push(ChainVerifier::new());
                verifiers.len() - 1
            }
        };
        let verifier = &mut verifiers[slot];
        if verifier.is_faulty() {
            verifier.push(&ev.text(""), Some(out.lines));
            continue;
        }
        match ev.canonical_payload() {
            Ok(payload) => verifier.push(&ev.text(&payload), Some(out.lines)),
            Err(message) => bad(format!("payload: {message}")),
        }
    }
    progress(out.bytes);
    out.sessions = verifiers.into_iter().map(ChainVerifier::finish).collect();
    Ok(out)
}

fn trim_line(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && matches!(line[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    &line[..end]
}

/// Verifies events given as JSON texts, in order, as one chain (no
/// grouping by session: a changed session id is a `session_mismatch`).
pub fn verify_chain_texts<'a>(
    events: impl IntoIterator<Item = &'a [u8]>,
    anchor: Option<(u64, &str)>,
) -> Result<ChainVerification> {
    let mut verifier = match anchor {
        Some((seq, prev)) => ChainVerifier::anchored(seq, prev),
        None => ChainVerifier::new(),
    };
    for (i, text) in events.into_iter().enumerate() {
        let ev = RawEvent::parse(text).map_err(|m| {
            CoreError::invalid(
                "CHAIN_INVALID",
                format!("/{i}"),
                format!("not a TRACE event: {m}"),
            )
        })?;
        let payload = ev
            .canonical_payload()
            .map_err(|m| CoreError::invalid("CHAIN_INVALID", format!("/{i}/payload"), m))?;
        verifier.push(&ev.text(&payload), None);
    }
    Ok(verifier.finish())
}
