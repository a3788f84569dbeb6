//! The runtime: the one place that holds state and ties the layers below
//! together. `state.rs` defines the `Runtime` (recorder, memory store,
//! session table, CARP state) and its record path; every other
//! `impl Runtime` is in a file named for what it does (sessions, atlases,
//! admission, resolve, validate, execute, approvals). Files here name
//! each other directly, never through this table of contents.

pub mod admit;
pub mod approve;
pub mod atlases;
pub mod execute;
pub mod execute_answer;
pub mod execute_checks;
pub mod lifetime;
pub mod resolve;
pub mod session;
pub mod sessions;
pub mod shared;
pub mod state;
pub mod validate;

pub use execute_answer::{Begin, Ticket};
pub use lifetime::Lifetime;
pub use session::{Session, SessionStatus};
pub use state::{Direct, Runtime, RuntimeConfig, Wait};
pub use validate::ValidationReport;
