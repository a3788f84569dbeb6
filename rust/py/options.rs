//! Options of `_core.Runtime(...)` read into core settings: the signing
//! key and checkpoint policy.

use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;

use crate::error::CoreError;
use crate::trace::chain::Checkpointing;
use crate::trace::checkpoint::CheckpointPolicy;
use crate::trace::signing::CheckpointSigner;

use super::errors::IntoPyResult;

/// The signing key and checkpoint policy of `Runtime(signing_key=...)`.
pub(super) fn checkpointing(
    key: Option<&std::path::Path>,
    every_events: u64,
    every_seconds: Option<f64>,
    at_flush: bool,
) -> PyResult<Option<Arc<Checkpointing>>> {
    let Some(path) = key else { return Ok(None) };
    let option = |path: &str, why: &str| {
        super::errors::to_py(CoreError::invalid("INVALID_OPTION", path, why.to_string()))
    };
    if every_events == 0 {
        return Err(option("/checkpoint_events", "must be at least 1"));
    }
    let every = match every_seconds {
        None => None,
        Some(s) if s.is_finite() && s > 0.0 => Some(Duration::from_secs_f64(s)),
        Some(_) => {
            return Err(option(
                "/checkpoint_seconds",
                "must be a number of seconds > 0 or None",
            ))
        }
    };
    let signer = CheckpointSigner::from_pem_file(path).py()?;
    Ok(Some(Arc::new(Checkpointing {
        signer,
        policy: CheckpointPolicy {
            every_events,
            every,
            at_flush,
        },
    })))
}
