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
    /// Stores a batch as the chains' authority: a store shared by several
    /// writers (PostgreSQL) assigns each session's sequence numbers and
    /// links under its own lock, and returns the batch re-sealed onto the
    /// heads it found when another writer extended a chain meanwhile
    /// (None: stored as given). Other sinks just store it.
    fn write_chained(&mut self, events: &SealedBatch) -> Result<Option<Vec<Arc<TraceEvent>>>> {
        self.write_batch(events).map(|()| None)
    }
    /// Bytes of a torn tail this sink found when it opened (file sinks): set
    /// aside (copied to a side file and ended with a newline), never removed.
    fn repaired_bytes(&self) -> u64 {
        0
    }
}

pub trait SinkFactory: Send + Sync {
    fn open(&self) -> Result<Box<dyn Sink>>;
    /// True for the store that assigns sequence numbers and links (see
    /// `Sink::write_chained`): it is written first, so every other sink
    /// gets the batch as that store keeps it.
    fn assigns_chain(&self) -> bool {
        false
    }
    /// Opens again in a forked child (which must not disturb the parent's writes).
    fn open_in_child(&self) -> Result<Box<dyn Sink>> {
        self.open()
    }
}
