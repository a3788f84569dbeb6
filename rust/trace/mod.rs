//! TRACE/1.0: events and their hash, per-session chains, the recorder and
//! its flush thread, the sinks (memory, JSON Lines, any `Sink`), payload
//! writing and chain verification (in memory and from a file). Knows
//! nothing of CARP or atlases.

pub mod chain;
pub mod checkpoint;
pub mod event;
pub mod flush;
pub mod hash;
pub mod jsonl;
pub mod memory;
pub mod merkle;
pub mod payload;
pub mod recorder;
pub mod recorder_state;
pub mod signing;
pub mod sink;
pub mod verify;
pub mod verify_file;
pub mod verify_signed;

pub use chain::{Record, SpanRef};
pub use event::{EventType, TraceEvent};
pub use hash::HashAlgorithm;
pub use payload::Payload;
pub use recorder::{Recorder, RecorderConfig};
pub use sink::{Sink, SinkFactory};
pub use verify::{ChainVerification, ChainVerifier};
