//! The PostgreSQL store (feature `postgres`): the shared state of several
//! `cra serve` replicas. Its versioned schema (`schema`), connections
//! (`db`), the flush thread's sink, which assigns every chain's sequence
//! numbers and links under a row lock (`sink`), limits counted in the
//! database (`counters`), resolutions and approvals (`shared`), and the sessions' owners and reads (`sessions`).

pub mod counters;
pub mod db;
pub mod schema;
pub mod sessions;
pub mod shared;
pub mod sink;

pub use counters::PgCounters;
pub use db::PgDb;
pub use shared::{PendingDocs, PgApprovals, PgKeys, PgResolutions};
pub use sink::PgSinkFactory;
