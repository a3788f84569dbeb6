//! The sinks `_core.Runtime(sinks=[...])` is given: a native store's own
//! (SQLite, PostgreSQL: written by the flush thread without Python), or
//! one that calls the object's Python `write_batch`.

use std::sync::Arc;

use pyo3::prelude::*;

use crate::trace::sink::SinkFactory;

use super::sink::PySinkFactory;
use super::sqlite::SQLiteSink;

pub fn sink_of(s: &Bound<'_, PyAny>) -> Arc<dyn SinkFactory> {
    if let Ok(native) = s.cast::<SQLiteSink>() {
        return Arc::clone(&native.get().0) as Arc<dyn SinkFactory>;
    }
    #[cfg(feature = "postgres")]
    if let Ok(native) = s.cast::<super::postgres::PostgresSink>() {
        return Arc::clone(&native.get().0) as Arc<dyn SinkFactory>;
    }
    Arc::new(PySinkFactory::of(s))
}
