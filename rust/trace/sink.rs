//! Where sealed events go. The flush thread owns one instance of each sink;
//! a factory opens a fresh one (at start, and again in a forked child).

use std::sync::Arc;

use crate::error::Result;
use crate::trace::event::TraceEvent;

pub type SealedBatch = [Arc<TraceEvent>];

pub trait Sink: Send {
    /// Stores a batch, all of it or none of it.
    fn write_batch(&mut self, events: &SealedBatch) -> Result<()>;
    /// Makes what was written durable (called by `flush()`).
    fn sync(&mut self) -> Result<()> {
        Ok(())
    }
    /// Bytes of a torn tail this sink found when it opened (file sinks): set
    /// aside (copied to a side file and ended with a newline), never removed.
    fn repaired_bytes(&self) -> u64 {
        0
    }
}

pub trait SinkFactory: Send + Sync {
    fn open(&self) -> Result<Box<dyn Sink>>;
    /// Opens again in a forked child (which must not disturb the parent's writes).
    fn open_in_child(&self) -> Result<Box<dyn Sink>> {
        self.open()
    }
}
