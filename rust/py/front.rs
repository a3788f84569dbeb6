//! `cra._core.Front`: `Runtime.resolve` and `Runtime.execute` of the Python
//! layer, with no Python frame on the way. The core's handle is wrapped in
//! the layer's result class (`CARPResolution`, `ExecuteResponse`) here, and
//! a failed request is named in its error, as the layer's own methods would.
//!
//! A result class is a plain Python class with a `_r` slot and no
//! `__new__` or `__init__` of its own. Its instances are allocated the way
//! `object()` allocates them (`PyType_GenericAlloc`, no Python code) and
//! the handle is stored straight into the slot, whose place in the object
//! is found once by setting it through its descriptor on a probe instance.
//! Where that cannot be found, instances are made by calling the class and
//! setting the slot through its descriptor (which also passes by the
//! class's read-only `__setattr__`).

use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyType};
use pyo3::IntoPyObjectExt;

use crate::carp::execute::Status;

use super::execute::ExecuteResponse;
use super::resolution::Resolution;
use super::runtime::Runtime;

/// Makes instances of one result class around core handles.
struct Wrapper {
    class: Py<PyType>,
    /// `class._r.__set__`: sets the slot of an instance.
    set_handle: Py<PyAny>,
    /// Byte offset of the `_r` slot in an instance, when known.
    slot: Option<usize>,
}

impl Wrapper {
    fn new(class: &Bound<'_, PyType>) -> PyResult<Self> {
        let set_handle = class
            .getattr(intern!(class.py(), "_r"))?
            .getattr(intern!(class.py(), "__set__"))?;
        let slot = slot_offset(class, &set_handle)?;
        Ok(Wrapper {
            class: class.clone().unbind(),
            set_handle: set_handle.unbind(),
            slot,
        })
    }

    fn wrap<'py, T>(&self, py: Python<'py>, handle: T) -> PyResult<Bound<'py, PyAny>>
    where
        T: IntoPyObject<'py>,
    {
        let Some(offset) = self.slot else {
            let obj = self.class.bind(py).call0()?;
            self.set_handle.bind(py).call1((&obj, handle))?;
            return Ok(obj);
        };
        let handle = handle.into_bound_py_any(py)?;
        let obj = allocate(self.class.bind(py))?;
        // SAFETY: `offset` is where this class's instances keep `_r`
        // (`slot_offset`), inside the object; a new instance's slots are
        // zeroed, so the slot takes the handle's reference with nothing to
        // release.
        unsafe {
            let slot = obj
                .as_ptr()
                .cast::<u8>()
                .add(offset)
                .cast::<*mut ffi::PyObject>();
            *slot = handle.into_ptr();
        }
        Ok(obj)
    }
}

/// A new, zeroed instance of `class`, as `object.__new__` makes it.
fn allocate<'py>(class: &Bound<'py, PyType>) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: `class` is a live type object and the GIL is held.
    unsafe {
        let obj = ffi::PyType_GenericAlloc(class.as_ptr().cast(), 0);
        Bound::from_owned_ptr_or_err(class.py(), obj)
    }
}

/// Where instances of `class` keep the slot `set_handle` sets, found by
/// setting it to a fresh object on a probe instance and looking for that
/// object's address among the instance's words. `None` when the class has
/// a constructor of its own (it must then be called) or the slot is not
/// found.
fn slot_offset(
    class: &Bound<'_, PyType>,
    set_handle: &Bound<'_, PyAny>,
) -> PyResult<Option<usize>> {
    let py = class.py();
    let object = py.get_type::<PyAny>();
    for name in [intern!(py, "__new__"), intern!(py, "__init__")] {
        if !class.getattr(name)?.is(&object.getattr(name)?) {
            return Ok(None);
        }
    }
    let size: usize = class.getattr(intern!(py, "__basicsize__"))?.extract()?;
    let start: usize = object.getattr(intern!(py, "__basicsize__"))?.extract()?;
    let probe = allocate(class)?;
    let marker = object.call0()?;
    set_handle.call1((&probe, &marker))?;
    let word = std::mem::size_of::<*mut ffi::PyObject>();
    let found = (start..size).step_by(word).find(|&offset| {
        // SAFETY: every offset read is inside the probe's `size` bytes.
        let at = unsafe {
            probe
                .as_ptr()
                .cast::<u8>()
                .add(offset)
                .cast::<*mut ffi::PyObject>()
        };
        unsafe { at.read_unaligned() == marker.as_ptr() }
    });
    Ok(found)
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
    /// Each session's own executors (a dict of dicts, by session id).
    sessions: Py<PyDict>,
    /// Called with every answer that is not a success.
    observe: Py<PyAny>,
}

impl Front {
    pub(super) fn runtime(&self) -> &Py<Runtime> {
        &self.runtime
    }
    pub(super) fn executors<'py>(&self, py: Python<'py>) -> &Bound<'py, PyDict> {
        self.executors.bind(py)
    }
    pub(super) fn sessions<'py>(&self, py: Python<'py>) -> &Bound<'py, PyDict> {
        self.sessions.bind(py)
    }
    pub(super) fn settle<'py>(&self, py: Python<'py>) -> &Bound<'py, PyAny> {
        self.settle.bind(py)
    }
    /// A core resolution as the layer's resolution class.
    pub(super) fn resolution<'py>(
        &self,
        py: Python<'py>,
        handle: Resolution,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.resolution.wrap(py, handle)
    }
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
        sessions: Py<PyDict>,
        observe: Py<PyAny>,
    ) -> PyResult<Self> {
        Ok(Front {
            runtime,
            resolution: Wrapper::new(resolution_class)?,
            response: Wrapper::new(response_class)?,
            executors,
            settle,
            sessions,
            observe,
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
        let sessions = Some(self.sessions.bind(py));
        match self
            .runtime
            .get()
            .execute(py, request, executors, settle, sessions)
        {
            Ok(handle) => self.answered(py, handle),
            Err(e) => Err(named(py, e, request)),
        }
    }
}

impl Front {
    /// The layer's response for `handle`; an answer other than success is
    /// shown to the layer's `observe` hook first (it logs refusals and
    /// failures), a success is not (nothing on the hot path).
    pub(super) fn answered<'py>(
        &self,
        py: Python<'py>,
        handle: ExecuteResponse,
    ) -> PyResult<Bound<'py, PyAny>> {
        let success = handle.0.status == Status::Success;
        let resp = self.response.wrap(py, handle)?;
        if !success {
            self.observe.bind(py).call1((&resp,))?;
        }
        Ok(resp)
    }
}
