//! `_core.Runtime`'s durability side: its mode, commit tickets and the
//! waits on them, commit notices for an event loop, and whether the trace
//! can take work now (see `specs/recording.md` §11, `specs/http.md` §10).

use pyo3::prelude::*;

use super::errors::IntoPyResult;
use super::runtime::{timeout as seconds, Detached, Runtime};

#[pymethods]
impl Runtime {
    #[getter]
    fn durability(&self) -> &'static str {
        self.0.config().durability.as_str()
    }

    /// Pushes a commit ticket behind everything recorded so far and
    /// returns it (see `wait_committed`).
    fn barrier(&self, py: Python<'_>) -> PyResult<u64> {
        self.0.barrier(&Detached(py)).py()
    }

    /// Waits (GIL released) until `ticket` is committed (True) or the
    /// timeout passes (False); raises `UnavailableError`
    /// (`TRACE_UNAVAILABLE`) if the store fails first.
    #[pyo3(signature = (ticket, timeout=None))]
    fn wait_committed(&self, py: Python<'_>, ticket: u64, timeout: Option<f64>) -> PyResult<bool> {
        let t = seconds(timeout)?;
        let rt = &self.0;
        py.detach(|| rt.wait_committed(ticket, t)).py()
    }

    /// The highest committed ticket.
    fn committed(&self) -> u64 {
        self.0.committed()
    }

    /// Why the trace store cannot write, while it cannot (else None).
    fn failing(&self) -> Option<String> {
        self.0.failing()
    }

    /// A descriptor (a non-blocking pipe's write end, kept open by the
    /// caller) the flush thread writes one byte to at the next commit or
    /// failure after `want_commit_notice()`; -1 stops it.
    fn set_commit_notice_fd(&self, fd: i32) {
        self.0.set_notice_fd(fd);
    }

    /// Asks for one notice byte at the next commit or failure.
    fn want_commit_notice(&self) {
        self.0.want_notice();
    }

    /// Why the trace cannot take new work now (store failing, queue
    /// nearly full, closed), or None.
    fn unavailable_reason(&self) -> Option<String> {
        self.0.unavailable_reason()
    }

    /// Raises `UnavailableError` when `unavailable_reason()` is not None.
    fn check_available(&self) -> PyResult<()> {
        self.0.check_available().py()
    }
}
