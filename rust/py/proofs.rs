//! Merkle proofs for Python: build them from a trace file, check them
//! offline with a public key (see `audit/proofs.rs`).

use std::path::PathBuf;

use pyo3::prelude::*;

use crate::audit::proofs;
use crate::error::CoreError;
use crate::trace::signing::CheckpointKey;

use super::errors::IntoPyResult;

fn text(v: serde_json::Value) -> String {
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

/// The inclusion proof of an event of a trace file, as JSON text.
#[pyfunction]
pub fn prove_inclusion(py: Python<'_>, path: PathBuf, event_id: &str) -> PyResult<String> {
    py.detach(|| proofs::prove_inclusion(&path, event_id))
        .map(text)
        .py()
}

/// The consistency proof between two checkpoints (by sequence) of a
/// session of a trace file, as JSON text.
#[pyfunction]
#[pyo3(signature = (path, first, second, session_id=None))]
pub fn prove_consistency(
    py: Python<'_>,
    path: PathBuf,
    first: u64,
    second: u64,
    session_id: Option<&str>,
) -> PyResult<String> {
    py.detach(|| proofs::prove_consistency(&path, session_id, first, second))
        .map(text)
        .py()
}

/// Checks a proof (JSON text) with a public key file; returns what it
/// proves, or raises `PROOF_INVALID` / `SIGNATURE_INVALID`.
#[pyfunction]
pub fn verify_proof(py: Python<'_>, proof: &str, public_key: PathBuf) -> PyResult<String> {
    let key = CheckpointKey::from_pem_file(&public_key).py()?;
    let value: serde_json::Value = serde_json::from_str(proof)
        .map_err(|e| CoreError::invalid("PROOF_INVALID", "", format!("not JSON: {e}")))
        .py()?;
    py.detach(|| proofs::verify_proof(&value, &key)).py()
}
