//! Checkpoint signing keys for Python: generate a key pair, read a key id.

use std::path::PathBuf;

use pyo3::prelude::*;

use crate::trace::signing::{generate, CheckpointKey, CheckpointSigner};

use super::errors::IntoPyResult;

/// Writes a new Ed25519 key pair (`path`: PKCS#8 PEM, mode 0600;
/// `path.pub`: SPKI PEM); returns its key id. Never overwrites a file.
#[pyfunction]
pub fn generate_signing_key(path: PathBuf) -> PyResult<String> {
    generate(&path).py()
}

/// The key id of a key file: a private key (PKCS#8 PEM) or a public one
/// (SPKI PEM).
#[pyfunction]
pub fn key_id_of(path: PathBuf) -> PyResult<String> {
    match CheckpointSigner::from_pem_file(&path) {
        Ok(signer) => Ok(signer.key_id().to_string()),
        Err(_) => CheckpointKey::from_pem_file(&path)
            .map(|k| k.key_id().to_string())
            .py(),
    }
}
