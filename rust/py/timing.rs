//! Clocks and the standalone sliding-window limiter for Python.

use std::sync::Arc;

use pyo3::prelude::*;

use crate::carp::limits::SlidingWindow;
use crate::error::CoreError;
use crate::time::{Clock, ManualClock as CoreManualClock, Micros, SharedClock, SystemClock};

use super::errors::to_py;

fn micros(seconds: f64, path: &str) -> PyResult<Micros> {
    if !seconds.is_finite() {
        return Err(to_py(CoreError::invalid(
            "INVALID_OPTION",
            path,
            "must be a finite number of seconds",
        )));
    }
    Ok((seconds * 1e6).round() as Micros)
}

/// A clock that moves only when told to (tests of expiry and windows).
#[pyclass(frozen, module = "cra._core", name = "ManualClock")]
pub struct ManualClock(pub Arc<CoreManualClock>);

#[pymethods]
impl ManualClock {
    /// `start`: seconds since the Unix epoch (default: now).
    #[new]
    #[pyo3(signature = (start=None))]
    fn new(start: Option<f64>) -> PyResult<Self> {
        let start = match start {
            Some(s) => micros(s, "/start")?,
            None => SystemClock.now_micros(),
        };
        Ok(ManualClock(Arc::new(CoreManualClock::new(start))))
    }

    /// Seconds since the Unix epoch.
    fn now(&self) -> f64 {
        self.0.now_micros() as f64 / 1e6
    }

    fn advance(&self, seconds: f64) -> PyResult<()> {
        self.0.advance(micros(seconds, "/seconds")?);
        Ok(())
    }

    fn set(&self, seconds: f64) -> PyResult<()> {
        self.0.set(micros(seconds, "/seconds")?);
        Ok(())
    }
}

/// Any Python object with `now() -> float` (seconds since the epoch).
struct PyClock(Py<PyAny>);

impl Clock for PyClock {
    fn now_micros(&self) -> Micros {
        Python::try_attach(|py| {
            let v: f64 = self
                .0
                .call_method0(py, "now")
                .and_then(|v| v.extract(py))
                .ok()?;
            v.is_finite().then_some((v * 1e6) as Micros)
        })
        .flatten()
        .unwrap_or_else(|| SystemClock.now_micros())
    }
}

/// The core clock for a Python `clock` argument (None: the system clock).
pub fn shared_clock(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<SharedClock>> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(None);
    };
    if let Ok(m) = obj.cast::<ManualClock>() {
        return Ok(Some(m.get().0.clone() as SharedClock));
    }
    if obj.getattr("_cra_system_clock").is_ok() {
        return Ok(None);
    }
    if !obj.hasattr("now")? {
        return Err(to_py(CoreError::invalid(
            "INVALID_OPTION",
            "/clock",
            "a clock needs a now() method returning seconds",
        )));
    }
    Ok(Some(Arc::new(PyClock(obj.clone().unbind()))))
}

/// At most `max_calls` per `window_seconds`, per key, over a sliding window.
#[pyclass(frozen, module = "cra._core", name = "SlidingWindowRateLimiter")]
pub struct SlidingWindowRateLimiter {
    window: SlidingWindow,
    clock: SharedClock,
}

#[pymethods]
impl SlidingWindowRateLimiter {
    #[new]
    #[pyo3(signature = (max_calls, window_seconds, clock=None))]
    fn new(
        max_calls: u64,
        window_seconds: f64,
        clock: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        if window_seconds <= 0.0 || max_calls == 0 {
            return Err(to_py(CoreError::invalid(
                "INVALID_OPTION",
                "/window_seconds",
                "max_calls and window_seconds must be > 0",
            )));
        }
        let clock = shared_clock(clock)?.unwrap_or_else(|| Arc::new(SystemClock));
        Ok(SlidingWindowRateLimiter {
            window: SlidingWindow::new(max_calls, micros(window_seconds, "/window_seconds")?),
            clock,
        })
    }

    /// Takes a slot for `key`; False if the window is full.
    #[pyo3(signature = (key=""))]
    fn acquire(&self, key: &str) -> bool {
        self.window.acquire(key, self.clock.now_micros()).is_ok()
    }

    /// Seconds until `key` has a free slot (0.0 if it has one now).
    #[pyo3(signature = (key=""))]
    fn retry_after(&self, key: &str) -> f64 {
        self.window.retry_after(key, self.clock.now_micros()) as f64 / 1e6
    }

    #[pyo3(signature = (key=""))]
    fn remaining(&self, key: &str) -> u64 {
        self.window.remaining(key, self.clock.now_micros())
    }

    #[pyo3(signature = (key=None))]
    fn reset(&self, key: Option<&str>) {
        self.window.reset(key);
    }
}
