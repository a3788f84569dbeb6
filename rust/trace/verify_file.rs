//! Streaming verification of a `.trace.jsonl` file: constant memory per
//! session, sessions interleaved, a torn last line reported, and a torn line
//! that reopening set aside (copied to a side file) told apart from a bad line.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::error::{CoreError, Result};
use crate::json::canonical::text::text_to_canonical;
use crate::trace::checkpoint::Statement;
use crate::trace::hash::{HashAlgorithm, HashInput};
use crate::trace::signing::CheckpointKey;
use crate::trace::verify::{ChainVerification, ChainVerifier, EventText, Fault, FaultKind};
use crate::trace::verify_signed::{SignatureChecker, SignatureReport};

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

/// A line a crash left torn, which reopening the file copied to a side file
/// and ended with a newline (`trace/jsonl.rs`): not JSON, and its bytes are
/// exactly those of its side file. Not an event and not a bad line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornLine {
    pub line: u64,
    /// Where the line starts in the file (the `OFFSET` of its side file's name).
    pub offset: u64,
    /// Its length, without the newline reopening added.
    pub bytes: u64,
    /// The side file holding a copy of it.
    pub side_file: PathBuf,
}

/// The side file that holds a copy of `line` (its bytes without the newline
/// that ends it), a line starting at byte `offset` of the trace file `path`,
/// when `line` is a torn line set aside on reopening: not JSON, and a side
/// file `<name>.torn-<offset>` or `<name>.torn-<offset>.<n>` (n = 1, 2, …,
/// up to the first name that does not exist, the order in which
/// `trace/jsonl.rs` picks them) holds exactly its bytes. `None` otherwise.
/// Touches the file system only for a line that is not JSON.
pub fn set_aside_torn_line(path: &Path, offset: u64, line: &[u8]) -> Option<PathBuf> {
    if line.is_empty() || serde_json::from_slice::<Value>(line).is_ok() {
        return None;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for n in 0u32.. {
        let side = path.with_file_name(if n == 0 {
            format!("{name}.torn-{offset}")
        } else {
            format!("{name}.torn-{offset}.{n}")
        });
        let meta = std::fs::metadata(&side).ok()?;
        if meta.is_file()
            && meta.len() == line.len() as u64
            && std::fs::read(&side).ok()?.as_slice() == line
        {
            return Some(side);
        }
    }
    None
}

/// Where one session's chain starts in a file whose older events were
/// removed (by retention, before an export): the first kept event must carry
/// `sequence` and link to `previous_hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub session_id: String,
    pub sequence: u64,
    pub previous_hash: String,
    /// The chain's hash algorithm, when the anchor names it.
    pub algorithm: Option<HashAlgorithm>,
}

/// The version of the anchor file format (`anchor_version`).
pub const ANCHOR_VERSION: u64 = 1;

/// The anchor file written beside an exported trace: `FILE.anchor.json`.
pub fn anchor_path_for(trace: &Path) -> PathBuf {
    let mut name = trace.as_os_str().to_os_string();
    name.push(".anchor.json");
    PathBuf::from(name)
}

fn bad_anchor(file: &str, at: String, message: impl std::fmt::Display) -> CoreError {
    CoreError::invalid(
        "TRACE_INVALID",
        at,
        format!("{file} is not a trace anchor file: {message}"),
    )
}

/// Parses an anchor file: `{"anchor_version": 1, "anchors": [{"session_id",
/// "first_sequence", "previous_event_hash", "hash_algorithm"?}, ...]}`.
pub fn parse_anchors(text: &str, file: &str) -> Result<Vec<Anchor>> {
    let doc: Value = serde_json::from_str(text).map_err(|e| bad_anchor(file, "".into(), e))?;
    if doc.get("anchor_version").and_then(Value::as_u64) != Some(ANCHOR_VERSION) {
        return Err(bad_anchor(
            file,
            "/anchor_version".into(),
            format!("anchor_version must be {ANCHOR_VERSION}"),
        ));
    }
    let list = doc
        .get("anchors")
        .and_then(Value::as_array)
        .ok_or_else(|| bad_anchor(file, "/anchors".into(), "anchors must be a list"))?;
    let mut out: Vec<Anchor> = Vec::with_capacity(list.len());
    for (i, a) in list.iter().enumerate() {
        let at = |k: &str| format!("/anchors/{i}/{k}");
        let text_of = |k: &str| {
            a.get(k)
                .and_then(Value::as_str)
                .ok_or_else(|| bad_anchor(file, at(k), format!("{k} must be a string")))
        };
        let session_id = text_of("session_id")?.to_string();
        let sequence = a
            .get("first_sequence")
            .and_then(Value::as_u64)
            .ok_or_else(|| {
                bad_anchor(
                    file,
                    at("first_sequence"),
                    "first_sequence must be an integer >= 0",
                )
            })?;
        let previous_hash = text_of("previous_event_hash")?.to_string();
        if previous_hash.len() != 64
            || !previous_hash
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(bad_anchor(
                file,
                at("previous_event_hash"),
                "previous_event_hash must be 64 lower-case hex digits",
            ));
        }
        let algorithm = match a.get("hash_algorithm") {
            None | Some(Value::Null) => None,
            Some(Value::String(name)) => Some(HashAlgorithm::parse(name).map_err(|_| {
                bad_anchor(
                    file,
                    at("hash_algorithm"),
                    "hash_algorithm must be sha256 or blake3",
                )
            })?),
            Some(_) => {
                return Err(bad_anchor(
                    file,
                    at("hash_algorithm"),
                    "hash_algorithm must be a string",
                ))
            }
        };
        if out.iter().any(|o| o.session_id == session_id) {
            return Err(bad_anchor(
                file,
                at("session_id"),
                format!("session {session_id} is anchored twice"),
            ));
        }
        out.push(Anchor {
            session_id,
            sequence,
            previous_hash,
            algorithm,
        });
    }
    Ok(out)
}

/// Reads an anchor file (see `parse_anchors`).
pub fn read_anchors(path: &Path) -> Result<Vec<Anchor>> {
    let text = std::fs::read_to_string(path).map_err(|e| CoreError::io(path.display(), e))?;
    parse_anchors(&text, &path.display().to_string())
}

/// Which anchors a file is verified with.
#[derive(Debug, Clone, Copy)]
pub enum AnchorSource<'a> {
    /// `FILE.anchor.json` beside the file, if there is one.
    Beside,
    /// This anchor file (it must exist).
    File(&'a Path),
    /// None: every chain must start at genesis.
    Nothing,
}

#[derive(Debug, Clone, Default)]
pub struct FileVerification {
    /// One result per session, in order of first appearance.
    pub sessions: Vec<ChainVerification>,
    /// The anchor file the chains were verified with, if any.
    pub anchor_file: Option<PathBuf>,
    /// Anchors naming a session the file does not contain.
    pub anchor_faults: Vec<String>,
    pub bad_lines: Vec<BadLine>,
    /// All bad lines, including those past the kept ones.
    pub bad_line_count: u64,
    /// Torn lines set aside when the file was reopened (not bad lines; the
    /// first 100 kept, as bad lines are).
    pub torn_lines: Vec<TornLine>,
    /// All of them, including those past the kept ones.
    pub torn_line_count: u64,
    pub torn_tail: Option<TornTail>,
    pub lines: u64,
    pub bytes: u64,
    /// With a public key: each session's signatures (same order as
    /// `sessions`), and the key's id. `None`: completeness was not checked.
    pub signatures: Option<(String, Vec<SignatureReport>)>,
}

impl FileVerification {
    /// Every event verifies, every line is an event (or blank, or a torn
    /// line set aside: an event that was never written whole, so not part of
    /// any chain; a chain that went on after it fails on its own), the last
    /// line is whole and every anchor names a session of the file.
    pub fn valid(&self) -> bool {
        self.bad_line_count == 0
            && self.torn_tail.is_none()
            && self.anchor_faults.is_empty()
            && self.sessions.iter().all(ChainVerification::valid)
            && self
                .signatures
                .as_ref()
                .is_none_or(|(_, r)| r.iter().all(SignatureReport::valid))
    }

    pub fn event_count(&self) -> u64 {
        self.sessions.iter().map(|s| s.event_count).sum()
    }
}

/// Verifies a trace file, with the anchor file beside it if there is one
/// (`FILE.anchor.json`). `progress` is called with bytes read so far.
pub fn verify_file(path: &Path, progress: &mut dyn FnMut(u64)) -> Result<FileVerification> {
    verify_file_with(path, AnchorSource::Beside, None, progress)
}

/// Verifies a trace file with the anchors `source` names.
/// What signatures to check: the public key, and checkpoints kept
/// elsewhere (a witness's copies) to hold each chain against.
pub struct SignedCheck<'a> {
    pub key: &'a CheckpointKey,
    pub witnesses: Vec<(Statement, String)>,
}

/// With `signed`, the signed checkpoints of every chain are checked too.
pub fn verify_file_with(
    path: &Path,
    source: AnchorSource<'_>,
    signed: Option<&SignedCheck<'_>>,
    progress: &mut dyn FnMut(u64),
) -> Result<FileVerification> {
    let anchor_file = match source {
        AnchorSource::Beside => Some(anchor_path_for(path)).filter(|p| p.is_file()),
        AnchorSource::File(p) => Some(p.to_path_buf()),
        AnchorSource::Nothing => None,
    };
    let anchors = match &anchor_file {
        Some(p) => read_anchors(p)?,
        None => Vec::new(),
    };
    let file = File::open(path).map_err(|e| CoreError::io(path.display(), e))?;
    let mut out =
        verify_lines(file, &anchors, Some(path), signed, progress).map_err(|e| match e {
            CoreError::Io { message, .. } => CoreError::io(path.display(), message),
            other => other,
        })?;
    out.anchor_file = anchor_file;
    Ok(out)
}

/// Keeps at most this many bad lines in the report (all are counted).
const MAX_BAD_LINES: usize = 100;

pub fn verify_reader(reader: impl Read, progress: &mut dyn FnMut(u64)) -> Result<FileVerification> {
    verify_reader_anchored(reader, &[], progress)
}

/// `verify_reader` where the chains of the sessions `anchors` name start at
/// their anchor instead of genesis.
pub fn verify_reader_anchored(
    reader: impl Read,
    anchors: &[Anchor],
    progress: &mut dyn FnMut(u64),
) -> Result<FileVerification> {
    verify_lines(reader, anchors, None, None, progress)
}

/// `verify_reader_anchored`; with `path`, the file the reader reads, whose
/// side files tell torn lines set aside from bad lines.
fn verify_lines(
    reader: impl Read,
    anchors: &[Anchor],
    path: Option<&Path>,
    signed: Option<&SignedCheck<'_>>,
    progress: &mut dyn FnMut(u64),
) -> Result<FileVerification> {
    let key = signed.map(|s| s.key);
    let mut checkers: Vec<SignatureChecker<'_>> = Vec::new();
    let mut reader = BufReader::with_capacity(1 << 20, reader);
    let mut chains: HashMap<String, usize> = HashMap::new();
    let mut verifiers: Vec<ChainVerifier> = Vec::new();
    // Per chain: its anchor, and the sequence its first event carries.
    let mut starts: Vec<(Option<&Anchor>, u64)> = Vec::new();
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
        let parsed = RawEvent::parse(body);
        if parsed.is_err() {
            // A torn line that reopening set aside is told apart from a bad
            // line by its side file (looked for only for a line not JSON).
            let raw = &line[..line.len() - 1];
            if let Some(side_file) = path.and_then(|p| set_aside_torn_line(p, offset, raw)) {
                out.torn_line_count += 1;
                if out.torn_lines.len() < MAX_BAD_LINES {
                    out.torn_lines.push(TornLine {
                        line: out.lines,
                        offset,
                        bytes: raw.len() as u64,
                        side_file,
                    });
                }
                continue;
            }
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
        let ev = match parsed {
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
                let anchor = anchors.iter().find(|a| a.session_id == ev.session_id);
                verifiers.push(match anchor {
                    Some(a) => ChainVerifier::anchored(a.sequence, &a.previous_hash),
                    None => ChainVerifier::new(),
                });
                starts.push((anchor, ev.sequence));
                if let Some(s) = signed {
                    let mut checker = SignatureChecker::new(s.key);
                    for (st, sig) in &s.witnesses {
                        if st.session_id.to_string() == ev.session_id {
                            checker.expect(st.clone(), sig);
                        }
                    }
                    checkers.push(checker);
                }
                verifiers.len() - 1
            }
        };
        let verifier = &mut verifiers[slot];
        if verifier.is_faulty() {
            verifier.push(&ev.text(""), Some(out.lines));
            continue;
        }
        match ev.canonical_payload() {
            Ok(payload) => {
                verifier.push(&ev.text(&payload), Some(out.lines));
                if let (false, Some(c)) = (verifier.is_faulty(), checkers.get_mut(slot)) {
                    let t = ev.text(&payload);
                    c.push(
                        &ev.session_id,
                        ev.sequence,
                        t.input.event_type,
                        &payload,
                        &ev.event_hash,
                    );
                }
            }
            Err(message) => bad(format!("payload: {message}")),
        }
    }
    progress(out.bytes);
    out.signatures = key.map(|k| {
        let reports = checkers.into_iter().map(SignatureChecker::finish).collect();
        (k.key_id().to_string(), reports)
    });
    out.sessions = verifiers
        .into_iter()
        .zip(starts)
        .map(|(v, (anchor, first))| explain_start(v.finish(), anchor, first))
        .collect();
    out.anchor_faults = anchors
        .iter()
        .filter(|a| !chains.contains_key(&a.session_id))
        .map(|a| {
            format!(
                "the anchor names session {}, which has no events in the file",
                a.session_id
            )
        })
        .collect();
    Ok(out)
}

/// Checks a chain against its anchor's hash algorithm, and says how to
/// verify a chain that starts mid-way when it had no anchor.
fn explain_start(
    mut v: ChainVerification,
    anchor: Option<&Anchor>,
    first: u64,
) -> ChainVerification {
    match anchor {
        Some(a) => {
            if let (None, Some(want), Some(got)) = (&v.fault, a.algorithm, v.algorithm) {
                if want != got {
                    v.fault = Some(Fault {
                        kind: FaultKind::HashMismatch,
                        index: 0,
                        message: format!(
                            "the chain is hashed with {}, but its anchor says {}",
                            got.as_str(),
                            want.as_str()
                        ),
                        line: None,
                    });
                }
            }
        }
        None => {
            if let Some(f) = v
                .fault
                .as_mut()
                .filter(|f| f.index == 0 && f.kind == FaultKind::InvalidGenesis && first > 0)
            {
                f.message = format!(
                    "the file starts mid-chain, at sequence {first}: the events before it \
                     are not in the file (removed by retention before an export?); verify it \
                     with its anchor, the FILE.anchor.json an export writes beside it \
                     (`cra trace verify FILE --anchor ANCHOR.json` names one elsewhere)"
                );
            }
        }
    }
    v
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

#[cfg(test)]
#[path = "verify_file_tests.rs"]
mod tests;
