//! napi-rs glue: the Node.js addon `cra.node` (feature `node`). Only
//! conversion lives here; every rule lives in the plain-Rust core. Values
//! cross as JSON text (`node/index.js` stringifies and parses), errors as
//! a tagged JSON message that `index.js` turns into a `CraError`.

mod carp;
mod clock;
mod errors;
mod execute;
mod options;
mod reports;
mod resolution;
mod runtime;
mod tasks;
mod text;
mod verify;

/// The addon allocates on the JS thread and frees on the flush thread;
/// mimalloc's per-thread heaps keep that cheap, as for the Python
/// extension (which declares its own when both features are on).
#[cfg(not(feature = "python"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
