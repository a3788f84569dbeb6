//! CARP/1.0 as values and algorithms: requests and their checks, the
//! resolve algorithm and the policies that apply to an action, resolutions
//! (their JSON, their store, their events), rate limits and budgets,
//! approvals, and execute's response and events. Knows nothing of the
//! runtime: every `impl Runtime` is in `runtime/`.

pub mod applicable;
pub mod approvals;
pub mod execute;
pub mod execute_events;
pub mod keywords;
pub mod limits;
pub mod redact;
pub mod request;
pub mod resolution;
pub mod resolution_doc;
pub mod resolution_json;
pub mod resolution_store;
pub mod resolve;
pub mod resolve_events;
pub mod shared_keys;

pub use execute::{ExecuteResponse, RunResult};
pub use request::{CarpRequest, Operation};
pub use resolution::Resolution;
