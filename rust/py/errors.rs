//! Core errors become the exception classes of `cra.errors`.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use crate::error::CoreError;

static FACTORY: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Builds the `cra.errors` exception for a core error.
pub fn to_py(err: CoreError) -> PyErr {
    Python::attach(|py| {
        let build = || -> PyResult<PyErr> {
            let factory = FACTORY.get_or_try_init(py, || {
                py.import("cra.errors")?
                    .getattr("_from_core")
                    .map(Bound::unbind)
            })?;
            let faults: Vec<(&str, &str)> = err
                .faults()
                .iter()
                .map(|f| (f.path.as_str(), f.message.as_str()))
                .collect();
            let exc = factory.bind(py).call1((
                err.code(),
                err.category().as_str(),
                err.message(),
                err.path(),
                err.recoverable(),
                faults,
            ))?;
            Ok(PyErr::from_value(exc))
        };
        build().unwrap_or_else(|e| e)
    })
}

pub trait IntoPyResult<T> {
    fn py(self) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for Result<T, CoreError> {
    #[inline]
    fn py(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}
