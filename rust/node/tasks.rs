//! The work that waits, run on libuv's thread pool so the JS thread never
//! blocks: flush and close, and verifying a trace file.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use napi::{Env, Task};

use crate::runtime::state::Runtime as CoreRuntime;
use crate::trace::verify_file::{verify_file_with, AnchorSource};

use super::errors::{invalid, IntoJsResult};
use super::reports;

pub(super) fn timeout(seconds: Option<f64>) -> napi::Result<Option<Duration>> {
    match seconds {
        None => Ok(None),
        Some(s) if s.is_finite() && s >= 0.0 => Ok(Some(Duration::from_secs_f64(s))),
        Some(s) => Err(invalid(
            "INVALID_OPTION",
            "/timeout",
            format!("timeout must be a number of seconds >= 0, not {s}"),
        )),
    }
}

/// `flush()` or `close()`.
pub struct Flush {
    pub rt: Arc<CoreRuntime>,
    pub timeout: Option<Duration>,
    pub close: bool,
}

impl Task for Flush {
    type Output = bool;
    type JsValue = bool;

    fn compute(&mut self) -> napi::Result<bool> {
        if self.close {
            self.rt.close(self.timeout).js()
        } else {
            self.rt.flush(self.timeout).js()
        }
    }

    fn resolve(&mut self, _env: Env, done: bool) -> napi::Result<bool> {
        Ok(done)
    }
}

/// `verifyJsonl(path)`: the file report as JSON text.
pub struct VerifyFile {
    pub path: PathBuf,
    pub use_sidecar: bool,
}

impl Task for VerifyFile {
    type Output = String;
    type JsValue = String;

    fn compute(&mut self) -> napi::Result<String> {
        let source = if self.use_sidecar {
            AnchorSource::Beside
        } else {
            AnchorSource::Nothing
        };
        let report = verify_file_with(&self.path, source, None, &mut |_| {}).js()?;
        Ok(reports::file(&report).to_string())
    }

    fn resolve(&mut self, _env: Env, report: String) -> napi::Result<String> {
        Ok(report)
    }
}
