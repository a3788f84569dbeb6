//! cra core: TRACE/1.0 hash chains, recording and verification.
//! Plain Rust; the Python bindings live in `py/` behind the `python` feature.

pub mod approvals;
pub mod atlas;
pub mod atlas_load;
pub mod atlas_parts;
pub mod canonical;
pub mod carp;
pub mod carp_approve;
pub mod carp_execute;
pub mod carp_validate;
pub mod chain;
pub mod decide;
pub mod diff;
pub mod error;
pub mod event;
pub mod execute;
pub mod execute_answer;
pub mod execute_checks;
pub mod execute_events;
pub mod fields;
pub mod hash;
pub mod ids;
pub mod ids_check;
pub mod json_view;
pub mod jsonl;
pub mod keywords;
pub mod lifetime;
pub mod limits;
pub mod memory;
pub mod pattern;
pub mod policy;
pub mod reconstruct;
pub mod recorded;
pub mod recorder;
pub mod registry;
pub mod replay;
pub mod request;
pub mod resolution;
pub mod resolution_json;
pub mod resolution_store;
pub mod resolve;
pub mod resolve_events;
pub mod runtime;
pub mod session;
pub mod sink;
pub mod sqlite_error;
pub mod sqlite_event;
pub mod sqlite_query;
pub mod sqlite_rows;
pub mod sqlite_schema;
pub mod sqlite_sink;
pub mod sqlite_store;
pub mod time;
pub mod verify;
pub mod verify_file;

#[cfg(feature = "python")]
mod py;

/// The extension allocates on the caller's thread and frees on the flush
/// thread; mimalloc's per-thread heaps keep that cheap (glibc malloc
/// consolidates and locks arenas for it).
#[cfg(feature = "python")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub use error::{Category, CoreError, Result};
