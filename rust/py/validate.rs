//! `Runtime.validate` on `cra._core.Runtime` (CARP §6): the report as a
//! dict of `valid` and every fault's path and message.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::error::Fault;
use crate::runtime::validate::ValidationReport;

use super::runtime::{Detached, Runtime};
use super::value::to_value;

#[pymethods]
impl Runtime {
    /// Validates a request (§6): `{"valid": bool, "errors": [{"path", "message"}]}`.
    fn validate<'py>(
        &self,
        py: Python<'py>,
        request: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let report = match to_value(request, "INVALID_REQUEST") {
            Ok(v) => self.durable(py, || Ok(self.0.validate_value(&v, &Detached(py))))?,
            Err(e) => ValidationReport {
                valid: false,
                errors: vec![Fault::new(e.path().unwrap_or_default(), e.message())],
            },
        };
        let d = PyDict::new(py);
        d.set_item("valid", report.valid)?;
        let errors = PyList::empty(py);
        for f in &report.errors {
            let e = PyDict::new(py);
            e.set_item("path", &f.path)?;
            e.set_item("message", &f.message)?;
            errors.append(e)?;
        }
        d.set_item("errors", errors)?;
        Ok(d)
    }
}
