//! cra core: TRACE/1.0 hash chains, CARP/1.0 resolution and execution.
//! Plain Rust; the Python bindings live in `py/` behind the `python` feature.
//!
//! The modules are layers; a module names only modules of lower layers
//! (`rust/tests/layout.rs` checks this, and that no files import in a
//! cycle):
//!
//! | layer | modules              | holds                                          |
//! |-------|----------------------|------------------------------------------------|
//! | 5     | `py`                 | PyO3 glue only (conversion, GIL handling)      |
//! | 4     | `runtime`, `audit`, `pg` | every `impl Runtime`; replay, diff; PostgreSQL |
//! | 3     | `carp`, `sqlite`     | protocol values and algorithms; the SQLite store |
//! | 2     | `trace`, `atlas`     | events, chains, recorder, sinks; atlases       |
//! | 1     | `json`               | canonical writer, read-only view, field readers |
//! | 0     | `error`, `ids`, `time` | the crate root                               |

pub mod atlas;
pub mod audit;
pub mod carp;
pub mod error;
pub mod ids;
pub mod json;
#[cfg(feature = "postgres")]
pub mod pg;
pub mod runtime;
pub mod sqlite;
pub mod time;
pub mod trace;

#[cfg(feature = "node")]
mod node;
#[cfg(feature = "python")]
mod py;

/// The extension allocates on the caller's thread and frees on the flush
/// thread; mimalloc's per-thread heaps keep that cheap (glibc malloc
/// consolidates and locks arenas for it).
#[cfg(feature = "python")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub use error::{Category, CoreError, Result};
