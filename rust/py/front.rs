//! `cra._core.Front`: `Runtime.resolve` and `Runtime.execute` of the Python
//! layer, with no Python frame on the way. The core's handle is wrapped in
//! the layer's result class (`CARPResolution`, `ExecuteResponse`) here, and
//! a failed request is named in its error, as the layer's own methods would.
//!
//! A result class is a plain Python class with a `_r` slot and no
//! `__init__`: it is made by calling it with no arguments (object's own
//! constructor, no Python code) and its slot is set through the slot's
//! descriptor, which also passes by the class's read-only `__setattr__`.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyType};

use super::runtime::Runtime;

/// Makes instances of one result class around core handles.
struct Wrapper {
    class: Py<PyType>,
    /// `class._r.__set__`: sets the slot of an instance.
    set_handle: Py<PyAny>,
}

impl Wrapper {
    fn new(class: &Bound<'_, PyType>) -> PyResult<Self> {
        let set_handle = class
            .getattr(intern!(class.py(), "_r"))?
            .getattr(intern!(class.py(), "__set__"))?
            .unbind();
        Ok(Wrapper {
            class: class.clone().unbind(),
            set_handle,
        })
    }

    fn wrap<'py, T>(&self, py: Python<'py>, handle: T) -> PyResult<Bound<'py, PyAny>>
    where
        T: IntoPyObject<'py>,
    {
        let obj = self.class.bind(py).call0()?;
        self.set_handle.bind(py).call1((&obj, handle))?;
        Ok(obj)
    }
}

/// Puts the request's id into a `cra.errors.CraError` that has none, when
/// the request is a mapping with a string `request_id`.
fn named(py: Python<'_>, err: PyErr, request: &Bound<'_, PyAny>) -> PyErr {
    let value = err.value(py);
    let attr = intern!(py, "request_id");
    let unnamed = value.getattr(attr).is_ok_and(|v| v.is_none());
    if unnamed {
        let rid = match request.cast::<PyDict>() {
            Ok(d) => d.get_item(attr).ok().flatten(),
            Err(_) => request.get_item(attr).ok(),
        };
        if let Some(rid) = rid.filter(|r| r.is_instance_of::<PyString>()) {
            // A class without the attribute keeps its error as it is.
            let _ = value.setattr(attr, rid);
        }
    }
    err
}

#[pyclass(frozen, module = "cra._core", name = "Front")]
pub struct Front {
    runtime: Py<Runtime>,
    resolution: Wrapper,
    response: Wrapper,
    /// The executors by action id or executor name (the layer's registry).
    executors: Py<PyDict>,
    /// Awaits what an executor returned when it is awaitable.
    settle: Py<PyAny>,
}

#[pymethods]
impl Front {
    #[new]
    fn new(
        runtime: Py<Runtime>,
        resolution_class: &Bound<'_, PyType>,
        response_class: &Bound<'_, PyType>,
        executors: Py<PyDict>,
        settle: Py<PyAny>,
    ) -> PyResult<Self> {
        Ok(Front {
            runtime,
            resolution: Wrapper::new(resolution_class)?,
            response: Wrapper::new(response_class)?,
            executors,
            settle,
        })
    }

    /// Resolves a CARP request into the layer's resolution class.
    fn resolve<'py>(
        &self,
        py: Python<'py>,
        request: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match self.runtime.get().resolve(py, request) {
            Ok(handle) => self.resolution.wrap(py, handle),
            Err(e) => Err(named(py, e, request)),
        }
    }

    /// Executes a request through the registered executors into the
    /// layer's response class.
    fn execute<'py>(
        &self,
        py: Python<'py>,
        request: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let executors = self.executors.bind(py);
        let settle = self.settle.bind(py);
        match self.runtime.get().execute(py, request, executors, settle) {
            Ok(handle) => self.response.wrap(py, handle),
            Err(e) => Err(named(py, e, request)),
        }
    }
}
