//! cra core: TRACE/1.0 hash chains, recording and verification.
//! Plain Rust; the Python bindings live in `py/` behind the `python` feature.

pub mod canonical;
pub mod chain;
pub mod error;
pub mod event;
pub mod hash;
pub mod ids;
pub mod jsonl;
pub mod memory;
pub mod recorder;
pub mod runtime;
pub mod session;
pub mod sink;
pub mod time;
pub mod verify;
pub mod verify_file;

#[cfg(feature = "python")]
mod py;

pub use error::{Category, CoreError, Result};
