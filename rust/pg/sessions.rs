//! Sessions in the PostgreSQL store: who owns each (claimed once, at
//! creation, and never replaced), their rows, and their events as stored.

use crate::error::Result;
use crate::pg::db::PgDb;
use crate::pg::sink::{row_of, COLUMNS};
use crate::sqlite::rows::SessionRow;

/// Makes `key_id` the owner of `session_id`; false (changing nothing) if
/// the session has an owner already, or events in the store.
pub fn claim_owner(db: &PgDb, session_id: &str, key_id: &str) -> Result<bool> {
    db.with(|c| {
        let mut tx = c.transaction()?;
        let stored = tx
            .query_opt(
                "SELECT 1 FROM cra_sessions WHERE session_id = $1",
                &[&session_id],
            )?
            .is_some();
        let claimed = !stored
            && tx.execute(
                "INSERT INTO cra_owners (session_id, key_id) VALUES ($1, $2) \
                 ON CONFLICT (session_id) DO NOTHING",
                &[&session_id, &key_id],
            )? == 1;
        tx.commit()?;
        Ok(claimed)
    })
}

/// The key id that owns `session_id`, if any.
pub fn owner(db: &PgDb, session_id: &str) -> Result<Option<String>> {
    db.with(|c| {
        Ok(c.query_opt(
            "SELECT key_id FROM cra_owners WHERE session_id = $1",
            &[&session_id],
        )?
        .map(|r| r.get(0)))
    })
}

/// One session's row, if stored.
pub fn session_row(db: &PgDb, session_id: &str) -> Result<Option<SessionRow>> {
    db.with(|c| {
        Ok(c.query_opt(
            &format!("SELECT {COLUMNS} FROM cra_sessions WHERE session_id = $1"),
            &[&session_id],
        )?
        .map(|r| row_of(&r)))
    })
}

/// Every session's row, oldest first.
pub fn session_rows(db: &PgDb) -> Result<Vec<SessionRow>> {
    sessions_of(db, None, None)
}

/// The rows of the sessions `owner` owns (None: every session), with
/// `status` (None: any), oldest first.
pub fn sessions_of(
    db: &PgDb,
    owner: Option<&str>,
    status: Option<&str>,
) -> Result<Vec<SessionRow>> {
    let columns = COLUMNS
        .split(", ")
        .map(|c| format!("s.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    db.with(|c| {
        Ok(c.query(
            &format!(
                "SELECT {columns} FROM cra_sessions s \
                 WHERE ($1::text IS NULL OR EXISTS (SELECT 1 FROM cra_owners o \
                        WHERE o.session_id = s.session_id AND o.key_id = $1)) \
                   AND ($2::text IS NULL OR s.status = $2) \
                 ORDER BY s.started_at, s.session_id"
            ),
            &[&owner, &status],
        )?
        .iter()
        .map(row_of)
        .collect())
    })
}

/// A session's status in the store (`active`, `ended`), if stored.
pub fn status(db: &PgDb, session_id: &str) -> Result<Option<String>> {
    db.with(|c| {
        Ok(c.query_opt(
            "SELECT status FROM cra_sessions WHERE session_id = $1",
            &[&session_id],
        )?
        .map(|r| r.get(0)))
    })
}

/// A session's stored events as JSON texts, in sequence order: of one
/// type, from a sequence on, at most `limit` of them (each if given).
pub fn event_texts(
    db: &PgDb,
    session_id: &str,
    event_type: Option<&str>,
    since: Option<i64>,
    limit: Option<i64>,
) -> Result<Vec<String>> {
    db.with(|c| {
        Ok(c.query(
            "SELECT line FROM cra_events WHERE session_id = $1 \
             AND ($2::text IS NULL OR event_type = $2) \
             AND ($3::int8 IS NULL OR sequence >= $3) \
             ORDER BY sequence LIMIT $4",
            &[&session_id, &event_type, &since, &limit],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect())
    })
}

/// The session of a stored approval, if any.
pub fn approval_session(db: &PgDb, approval_id: &str) -> Result<Option<String>> {
    db.with(|c| {
        Ok(c.query_opt(
            "SELECT session_id FROM cra_approvals WHERE approval_id = $1",
            &[&approval_id],
        )?
        .map(|r| r.get(0)))
    })
}
