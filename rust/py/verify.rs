//! Verification results and entry points for Python.

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::error::CoreError;
use crate::trace::checkpoint::{Statement, CHECKPOINT_EVENT};
use crate::trace::signing::CheckpointKey;
use crate::trace::verify::ChainVerification;
use crate::trace::verify_file::{verify_file_with, AnchorSource, FileVerification, SignedCheck};
use crate::trace::verify_signed::{SignatureChecker, SignatureReport};

use super::errors::IntoPyResult;
use super::event::Event;

#[pyclass(frozen, module = "cra._core", name = "ChainReport")]
pub struct ChainReport(pub ChainVerification);

#[pymethods]
impl ChainReport {
    #[getter]
    fn valid(&self) -> bool {
        self.0.valid()
    }
    #[getter]
    fn error(&self) -> Option<&'static str> {
        self.0.fault.as_ref().map(|f| f.kind.as_str())
    }
    #[getter]
    fn index(&self) -> Option<u64> {
        self.0.fault.as_ref().map(|f| f.index)
    }
    #[getter]
    fn line(&self) -> Option<u64> {
        self.0.fault.as_ref().and_then(|f| f.line)
    }
    #[getter]
    fn message(&self) -> Option<String> {
        self.0.fault.as_ref().map(|f| f.message.clone())
    }
    #[getter]
    fn event_count(&self) -> u64 {
        self.0.event_count
    }
    #[getter]
    fn algorithm(&self) -> Option<&'static str> {
        self.0.algorithm.map(|a| a.as_str())
    }
    #[getter]
    fn session_id(&self) -> Option<String> {
        self.0.session_id.clone()
    }
    /// The sequence of the anchor the chain was verified from, if not genesis.
    #[getter]
    fn anchored_at(&self) -> Option<u64> {
        self.0.anchored_at
    }
}

#[pyclass(frozen, module = "cra._core", name = "FileReport")]
pub struct FileReport(pub FileVerification);

#[pymethods]
impl FileReport {
    #[getter]
    fn valid(&self) -> bool {
        self.0.valid()
    }
    #[getter]
    fn sessions(&self) -> Vec<ChainReport> {
        self.0.sessions.iter().cloned().map(ChainReport).collect()
    }
    /// `(line, offset, bytes)` of a torn last line, if any.
    #[getter]
    fn torn_tail(&self) -> Option<(u64, u64, u64)> {
        self.0
            .torn_tail
            .as_ref()
            .map(|t| (t.line, t.offset, t.bytes))
    }
    /// `(line, message)` of lines that are not events (the first 100).
    #[getter]
    fn bad_lines(&self) -> Vec<(u64, String)> {
        self.0
            .bad_lines
            .iter()
            .map(|b| (b.line, b.message.clone()))
            .collect()
    }
    #[getter]
    fn bad_line_count(&self) -> u64 {
        self.0.bad_line_count
    }
    /// `(line, offset, bytes, side_file)` of torn lines that reopening the
    /// file set aside (copied to `side_file`): not events, not bad lines
    /// (the first 100).
    #[getter]
    fn torn_lines(&self) -> Vec<(u64, u64, u64, String)> {
        self.0
            .torn_lines
            .iter()
            .map(|t| {
                (
                    t.line,
                    t.offset,
                    t.bytes,
                    t.side_file.to_string_lossy().into_owned(),
                )
            })
            .collect()
    }
    #[getter]
    fn torn_line_count(&self) -> u64 {
        self.0.torn_line_count
    }
    #[getter]
    fn lines(&self) -> u64 {
        self.0.lines
    }
    #[getter]
    fn bytes(&self) -> u64 {
        self.0.bytes
    }
    #[getter]
    fn event_count(&self) -> u64 {
        self.0.event_count()
    }
    /// The anchor file the chains were verified with, if any.
    #[getter]
    fn anchor_file(&self) -> Option<String> {
        self.0
            .anchor_file
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned())
    }
    /// Anchors that name a session the file does not contain.
    #[getter]
    fn anchor_faults(&self) -> Vec<String> {
        self.0.anchor_faults.clone()
    }
    /// The id of the public key signatures were checked with; None when
    /// no key was given (completeness not checked).
    #[getter]
    fn key_id(&self) -> Option<String> {
        self.0.signatures.as_ref().map(|(k, _)| k.clone())
    }
    /// Per session (in `sessions` order), its signatures as checked; None
    /// without a key. Each: `checkpoints`, `valid_checkpoints`,
    /// `signed_events`, `events`, `unsigned_tail`, `ended`, `closed`,
    /// `coverage` (signed/events) and `faults` (`kind`, `sequence`,
    /// `message`).
    #[getter]
    fn signatures<'py>(&self, py: Python<'py>) -> PyResult<Option<Vec<Bound<'py, PyDict>>>> {
        let Some((_, reports)) = &self.0.signatures else {
            return Ok(None);
        };
        reports
            .iter()
            .map(|r| signature_dict(py, r))
            .collect::<PyResult<Vec<_>>>()
            .map(Some)
    }
}

/// Verifies a `.trace.jsonl` file, streaming; `progress(bytes_read)` is
/// called now and then. Chains start at the anchors of `anchor` (an anchor
/// file), else of `FILE.anchor.json` beside the file when `use_sidecar`.
#[pyfunction]
#[pyo3(signature = (path, progress=None, anchor=None, use_sidecar=true, public_key=None, checkpoints=Vec::new()))]
pub fn verify_jsonl(
    py: Python<'_>,
    path: PathBuf,
    progress: Option<Py<PyAny>>,
    anchor: Option<PathBuf>,
    use_sidecar: bool,
    public_key: Option<PathBuf>,
    checkpoints: Vec<PathBuf>,
) -> PyResult<FileReport> {
    let key = public_key
        .map(|p| CheckpointKey::from_pem_file(&p))
        .transpose()
        .py()?;
    if key.is_none() && !checkpoints.is_empty() {
        return Err(super::errors::to_py(CoreError::invalid(
            "INVALID_OPTION",
            "/checkpoints",
            "checkpoints kept elsewhere are checked with a public key: give public_key too",
        )));
    }
    let witnesses = checkpoints
        .iter()
        .map(|p| witness(p))
        .collect::<PyResult<Vec<_>>>()?;
    let signed = key.as_ref().map(|key| SignedCheck { key, witnesses });
    let source = match (&anchor, use_sidecar) {
        (Some(file), _) => AnchorSource::File(file),
        (None, true) => AnchorSource::Beside,
        (None, false) => AnchorSource::Nothing,
    };
    let report = py.detach(|| {
        let mut tick = |n: u64| {
            if let Some(cb) = &progress {
                Python::attach(|py| {
                    if let Err(e) = cb.call1(py, (n,)) {
                        e.write_unraisable(py, None);
                    }
                });
            }
        };
        verify_file_with(&path, source, signed.as_ref(), &mut tick)
    });
    report.map(FileReport).py()
}

/// Verifies one chain given as core events, in order.
#[pyfunction]
pub fn verify_events(events: &Bound<'_, PyList>) -> PyResult<ChainReport> {
    let mut list = Vec::with_capacity(events.len());
    for item in events.iter() {
        list.push(std::sync::Arc::clone(&item.cast::<Event>()?.get().0));
    }
    Ok(ChainReport(crate::trace::memory::verify_events(&list)))
}

/// Verifies events given as JSON texts (one chain, in order); `anchor`
/// `(sequence, previous_hash)` for a chain whose start was cut by retention.
#[pyfunction]
#[pyo3(signature = (events, anchor=None))]
pub fn verify_chain_json(
    py: Python<'_>,
    events: Vec<String>,
    anchor: Option<(u64, String)>,
) -> PyResult<ChainReport> {
    let anchor = anchor.as_ref().map(|(s, h)| (*s, h.as_str()));
    py.detach(|| {
        crate::trace::verify_file::verify_chain_texts(events.iter().map(|e| e.as_bytes()), anchor)
    })
    .map(ChainReport)
    .py()
}

/// One chain's signature report as a dict (see `FileReport.signatures`).
pub fn signature_dict<'py>(py: Python<'py>, r: &SignatureReport) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("checkpoints", r.checkpoints)?;
    d.set_item("valid_checkpoints", r.valid_checkpoints)?;
    d.set_item("signed_events", r.signed_events)?;
    d.set_item("events", r.events)?;
    d.set_item("unsigned_tail", r.unsigned_tail)?;
    d.set_item("ended", r.ended)?;
    d.set_item("closed", r.closed)?;
    d.set_item("roots_unchecked", r.roots_unchecked)?;
    let coverage = if r.events == 0 {
        1.0
    } else {
        r.signed_events.min(r.events) as f64 / r.events as f64
    };
    d.set_item("coverage", coverage)?;
    let faults = PyList::empty(py);
    for f in &r.faults {
        let fd = PyDict::new(py);
        fd.set_item("kind", f.kind.as_str())?;
        fd.set_item("sequence", f.sequence)?;
        fd.set_item("message", &f.message)?;
        faults.append(fd)?;
    }
    d.set_item("faults", faults)?;
    Ok(d)
}

/// A checkpoint kept elsewhere: a JSON file holding a `trace.checkpoint`
/// event (as `GET /v1/traces/{id}/checkpoint` serves it).
fn witness(path: &std::path::Path) -> PyResult<(Statement, String)> {
    let bad = |why: String| {
        super::errors::to_py(CoreError::invalid(
            "INVALID_CHECKPOINT",
            "/checkpoints",
            format!("{}: {why}", path.display()),
        ))
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let event: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    if event.get("event_type").and_then(|t| t.as_str()) != Some(CHECKPOINT_EVENT) {
        return Err(bad("not a trace.checkpoint event".into()));
    }
    let payload = event.get("payload").cloned().unwrap_or_default();
    Statement::parse(&payload).map_err(bad)
}

/// The signed checkpoints of one chain given as event JSON texts (in
/// order), checked with a key file: a public key (SPKI PEM) or the signing
/// key itself (PKCS#8 PEM, whose public half is used). A dict as
/// `FileReport.signatures` gives per session.
#[pyfunction]
pub fn check_signatures<'py>(
    py: Python<'py>,
    events: Vec<String>,
    key: PathBuf,
) -> PyResult<Bound<'py, PyDict>> {
    let key = match crate::trace::signing::CheckpointSigner::from_pem_file(&key) {
        Ok(signer) => signer.public_key(),
        Err(_) => CheckpointKey::from_pem_file(&key).py()?,
    };
    let report = py.detach(|| {
        let mut checker = SignatureChecker::new(&key);
        for text in &events {
            let Ok(ev) = crate::trace::verify_file::RawEvent::parse(text.as_bytes()) else {
                continue;
            };
            let Ok(payload) = ev.canonical_payload() else {
                continue;
            };
            checker.push(
                &ev.session_id,
                ev.sequence,
                &ev.event_type,
                &payload,
                &ev.event_hash,
            );
        }
        checker.finish()
    });
    signature_dict(py, &report)
}
