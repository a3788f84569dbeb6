//! A Python object with `write_batch(events)` as a sink of the flush thread.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::error::{CoreError, Result};
use crate::trace::sink::{SealedBatch, Sink, SinkFactory};

use super::event::Event;

pub struct PySinkFactory(pub Arc<Py<PyAny>>);

impl SinkFactory for PySinkFactory {
    fn open(&self) -> Result<Box<dyn Sink>> {
        Ok(Box::new(PySink(Arc::clone(&self.0))))
    }
}

struct PySink(Arc<Py<PyAny>>);

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

impl Sink for PySink {
    fn write_batch(&mut self, events: &SealedBatch) -> Result<()> {
        self.call("write_batch", Some(events))
    }

    fn sync(&mut self) -> Result<()> {
        self.call("flush", None)
    }
}
