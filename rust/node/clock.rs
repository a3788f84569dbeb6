//! `ManualClock`: a clock that moves only when told to (the core's), for
//! deterministic tests, given to `new Runtime({clock})`.

use std::sync::Arc;

use napi_derive::napi;

use crate::time::{Clock, ManualClock as CoreManualClock, Micros};

use super::errors::invalid;

#[napi(js_name = "NativeManualClock")]
pub struct NativeManualClock(pub(super) Arc<CoreManualClock>);

fn micros(seconds: f64, path: &str) -> napi::Result<Micros> {
    if seconds.is_finite() {
        Ok((seconds * 1e6).round() as Micros)
    } else {
        Err(invalid(
            "INVALID_OPTION",
            path,
            "must be a finite number of seconds",
        ))
    }
}

#[napi]
impl NativeManualClock {
    /// Starts at `start_seconds` since the epoch.
    #[napi(constructor)]
    pub fn new(start_seconds: f64) -> napi::Result<Self> {
        let start = micros(start_seconds, "/start")?;
        Ok(NativeManualClock(Arc::new(CoreManualClock::new(start))))
    }

    #[napi]
    pub fn advance(&self, seconds: f64) -> napi::Result<()> {
        self.0.advance(micros(seconds, "/seconds")?);
        Ok(())
    }

    #[napi]
    pub fn set(&self, seconds: f64) -> napi::Result<()> {
        self.0.set(micros(seconds, "/seconds")?);
        Ok(())
    }

    /// The reading, seconds since the epoch.
    #[napi]
    pub fn now(&self) -> f64 {
        self.0.now_micros() as f64 / 1e6
    }
}
