//! A Python object with `write_batch(events)` as a sink of the flush thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::error::{CoreError, Result};
use crate::trace::sink::{SealedBatch, Sink, SinkFactory};

use super::event::Event;

/// A switch a Python sink can hand the core (`_sink_gate()`): while it is
/// closed the flush thread skips the sink without taking the GIL (the
/// server's stream hub, with nobody subscribed).
#[pyclass(frozen, module = "cra._core", name = "SinkGate")]
#[derive(Default)]
pub struct SinkGate(pub Arc<AtomicBool>);

#[pymethods]
impl SinkGate {
    #[new]
    fn new() -> Self {
        SinkGate::default()
    }
    fn open(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    fn close(&self) {
        self.0.store(false, Ordering::SeqCst);
    }
    #[getter]
    fn is_open(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

pub struct PySinkFactory(pub Arc<Py<PyAny>>, pub Option<Arc<AtomicBool>>);

impl PySinkFactory {
    /// The sink object, with its gate if it offers one.
    pub fn of(sink: &Bound<'_, PyAny>) -> Self {
        let gate = sink
            .call_method0("_sink_gate")
            .ok()
            .and_then(|g| g.cast::<SinkGate>().ok().map(|g| Arc::clone(&g.get().0)));
        PySinkFactory(Arc::new(sink.clone().unbind()), gate)
    }
}

impl SinkFactory for PySinkFactory {
    fn open(&self) -> Result<Box<dyn Sink>> {
        Ok(Box::new(PySink(Arc::clone(&self.0), self.1.clone())))
    }
}

struct PySink(Arc<Py<PyAny>>, Option<Arc<AtomicBool>>);

fn sink_error(py: Python<'_>, err: PyErr) -> CoreError {
    let kind = err
        .get_type(py)
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default();
    CoreError::Sink(format!("{kind}: {}", err.value(py)))
}

impl PySink {
    fn call(&self, method: &str, events: Option<&SealedBatch>) -> Result<()> {
        let done = Python::try_attach(|py| {
            let sink = self.0.bind(py);
            let result = match events {
                Some(batch) => PyList::new(py, batch.iter().map(|e| Event(Arc::clone(e))))
                    .and_then(|list| sink.call_method1(method, (list,))),
                None if sink.hasattr(method).unwrap_or(false) => sink.call_method0(method),
                None => return Ok(()),
            };
            result.map(|_| ()).map_err(|e| sink_error(py, e))
        });
        done.unwrap_or_else(|| {
            Err(CoreError::Sink(
                "the Python interpreter is shutting down".into(),
            ))
        })
    }
}

impl PySink {
    fn closed(&self) -> bool {
        self.1.as_ref().is_some_and(|g| !g.load(Ordering::SeqCst))
    }
}

impl Sink for PySink {
    fn write_batch(&mut self, events: &SealedBatch) -> Result<()> {
        if self.closed() {
            return Ok(());
        }
        self.call("write_batch", Some(events))
    }

    fn sync(&mut self) -> Result<()> {
        if self.closed() {
            return Ok(());
        }
        self.call("flush", None)
    }
}
