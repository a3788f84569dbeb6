//! `_core.Runtime.share_state(db)`: a runtime that counts its limits,
//! keeps its resolutions and idempotency keys and decides its approvals in
//! a PostgreSQL store
//! shared with other runtimes (`runtime/shared.rs`).

use std::sync::Arc;

use pyo3::prelude::*;

use crate::ids::parse_uuid;
use crate::pg::{PgApprovals, PgCounters, PgKeys, PgResolutions};
use crate::runtime::shared::SharedState;

use super::errors::IntoPyResult;
use super::postgres::PostgresDatabase;
use super::runtime::Runtime;

#[pymethods]
impl Runtime {
    /// Shares limits, resolutions and approvals through `db` (once).
    fn share_state(&self, db: &PostgresDatabase) -> PyResult<()> {
        let state = SharedState {
            limits: Arc::new(PgCounters(Arc::clone(&db.db))),
            resolutions: Arc::new(PgResolutions {
                db: Arc::clone(&db.db),
                pending: Arc::clone(&db.docs),
            }),
            approvals: Arc::new(PgApprovals(Arc::clone(&db.db))),
            keys: Arc::new(PgKeys(Arc::clone(&db.db))),
        };
        self.0.share_state(state).py()
    }

    /// Closes here a session another runtime ended; records nothing.
    fn close_ended_elsewhere(&self, session_id: &str) -> PyResult<bool> {
        let id = parse_uuid(session_id, "/session_id").py()?;
        self.0.close_ended_elsewhere(&id).py()
    }
}
