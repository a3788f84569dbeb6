//! Audit from a recorded trace alone: its events read back, replay of its
//! resolves against atlases, the diff of two traces, and the state of a
//! session reconstructed.

pub mod diff;
pub mod proofs;
pub mod reconstruct;
pub mod replay;
pub mod trace_reader;

pub use trace_reader::{Recorded, TraceReader};
