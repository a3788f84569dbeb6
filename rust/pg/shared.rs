//! Resolutions and approvals in the PostgreSQL store. A resolution waits
//! in `PendingDocs`; its document is built and written by the flush thread in
//! the transaction of the next batch (so before any answer that waits for
//! the resolve's events, with no round trip of its own); an approval's
//! document is written at once, and every step on it runs under a row lock
//! (`SELECT … FOR UPDATE`).

use std::sync::Arc;

use parking_lot::Mutex;
use postgres::Transaction;
use uuid::Uuid;

use crate::carp::approvals::shared::SharedApprovals;
use crate::carp::resolution::Resolution;
use crate::carp::resolution_doc::{ResolutionDoc, SharedResolutions};
use crate::carp::shared_keys::{KeyClaim, SharedKeys};
use crate::error::Result;
use crate::pg::db::SharedPg;
use crate::time::Micros;

/// Resolutions waiting for the flush thread's next transaction, where
/// their documents are built and written (not on the resolving thread).
#[derive(Default)]
pub struct PendingDocs(Mutex<Vec<Arc<Resolution>>>);

/// What the flush thread takes for one transaction.
pub type Doc = Arc<Resolution>;

impl PendingDocs {
    pub fn take(&self) -> Vec<Doc> {
        std::mem::take(&mut *self.0.lock())
    }

    /// Puts back resolutions whose transaction failed (they go with the next).
    pub fn restore(&self, mut docs: Vec<Doc>) {
        let mut held = self.0.lock();
        docs.append(&mut held);
        *held = docs;
    }

    /// Writes the resolutions' documents in the batch's transaction, in one
    /// statement (a document already stored by an earlier attempt is kept).
    pub fn write(
        tx: &mut Transaction<'_>,
        docs: &[Doc],
    ) -> std::result::Result<(), postgres::Error> {
        if docs.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = docs.iter().map(|r| r.resolution_id.to_string()).collect();
        let sessions: Vec<String> = docs.iter().map(|r| r.session_id.to_string()).collect();
        let expires: Vec<i64> = docs.iter().map(|r| r.expires_at).collect();
        let texts: Vec<String> = docs
            .iter()
            .map(|r| ResolutionDoc::of(r).to_json())
            .collect();
        tx.execute(
            "INSERT INTO cra_resolutions (resolution_id, session_id, expires_at, doc) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[]) \
             ON CONFLICT (resolution_id) DO NOTHING",
            &[&ids, &sessions, &expires, &texts],
        )?;
        Ok(())
    }

    fn find(&self, id: &Uuid) -> Option<ResolutionDoc> {
        self.0
            .lock()
            .iter()
            .find(|r| r.resolution_id == *id)
            .map(|r| ResolutionDoc::of(r))
    }
}

pub struct PgResolutions {
    pub db: SharedPg,
    pub pending: Arc<PendingDocs>,
}

impl SharedResolutions for PgResolutions {
    fn keep(&self, resolution: &Arc<Resolution>) {
        self.pending.0.lock().push(Arc::clone(resolution));
    }

    fn find(&self, resolution_id: &Uuid) -> Result<Option<ResolutionDoc>> {
        if let Some(doc) = self.pending.find(resolution_id) {
            return Ok(Some(doc));
        }
        let id = resolution_id.to_string();
        let text: Option<String> = self.db.with(|c| {
            Ok(c.query_opt(
                "SELECT doc FROM cra_resolutions WHERE resolution_id = $1",
                &[&id],
            )?
            .map(|r| r.get(0)))
        })?;
        text.map(|t| ResolutionDoc::from_json(&t)).transpose()
    }
}

pub struct PgApprovals(pub SharedPg);

impl SharedApprovals for PgApprovals {
    fn insert(
        &self,
        approval_id: &Uuid,
        session_id: &Uuid,
        expires_at: Micros,
        doc: &str,
    ) -> Result<()> {
        self.0.with(|c| {
            c.execute(
                "INSERT INTO cra_approvals (approval_id, session_id, expires_at, doc) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (approval_id) DO UPDATE SET doc = EXCLUDED.doc",
                &[&approval_id.to_string(), &session_id.to_string(), &expires_at, &doc],
            )
            .map(|_| ())
        })
    }

    fn update(
        &self,
        approval_id: &Uuid,
        step: &mut dyn FnMut(Option<&str>) -> Option<String>,
    ) -> Result<()> {
        let id = approval_id.to_string();
        self.0.with(|c| {
            let mut tx = c.transaction()?;
            let stored: Option<String> = tx
                .query_opt(
                    "SELECT doc FROM cra_approvals WHERE approval_id = $1 FOR UPDATE",
                    &[&id],
                )?
                .map(|r| r.get(0));
            let after = step(stored.as_deref());
            if let (Some(doc), true) = (&after, stored.is_some()) {
                if stored.as_deref() != Some(doc.as_str()) {
                    tx.execute(
                        "UPDATE cra_approvals SET doc = $2 WHERE approval_id = $1",
                        &[&id, doc],
                    )?;
                }
            }
            tx.commit()
        })
    }

    fn read(&self, approval_id: &Uuid) -> Result<Option<String>> {
        self.0.with(|c| {
            Ok(c.query_opt(
                "SELECT doc FROM cra_approvals WHERE approval_id = $1",
                &[&approval_id.to_string()],
            )?
            .map(|r| r.get(0)))
        })
    }

    fn listed(&self, session: Option<&Uuid>, now: Micros) -> Result<Vec<(Uuid, String)>> {
        self.0.with(|c| {
            let rows = match session {
                Some(s) => c.query(
                    "SELECT approval_id, doc FROM cra_approvals \
                     WHERE session_id = $1 AND expires_at > $2 ORDER BY approval_id",
                    &[&s.to_string(), &now],
                )?,
                None => c.query(
                    "SELECT approval_id, doc FROM cra_approvals WHERE expires_at > $1 \
                     ORDER BY approval_id LIMIT 10000",
                    &[&now],
                )?,
            };
            Ok(rows
                .iter()
                .filter_map(|r| {
                    let id: String = r.get(0);
                    Some((Uuid::parse_str(&id).ok()?, r.get(1)))
                })
                .collect())
        })
    }
}

pub struct PgKeys(pub SharedPg);

impl SharedKeys for PgKeys {
    fn claim(&self, session: &Uuid, key: &str, fingerprint: &str) -> Result<KeyClaim> {
        let sid = session.to_string();
        self.0.with(|c| {
            let inserted = c.execute(
                "INSERT INTO cra_idempotency (session_id, key, fingerprint) VALUES ($1, $2, $3) \
                 ON CONFLICT (session_id, key) DO NOTHING",
                &[&sid, &key, &fingerprint],
            )?;
            if inserted == 1 {
                return Ok(KeyClaim::Claimed);
            }
            let row = c.query_opt(
                "SELECT fingerprint, response FROM cra_idempotency WHERE session_id = $1 AND key = $2",
                &[&sid, &key],
            )?;
            Ok(match row {
                // Dropped meanwhile: another attempt may claim it.
                None => KeyClaim::Running,
                Some(r) => match r.get::<_, Option<String>>(1) {
                    None => KeyClaim::Running,
                    Some(text) => KeyClaim::Done(r.get(0), text),
                },
            })
        })
    }

    fn finish(&self, session: &Uuid, key: &str, response: &str) -> Result<()> {
        self.0.with(|c| {
            c.execute(
                "UPDATE cra_idempotency SET response = $3 WHERE session_id = $1 AND key = $2",
                &[&session.to_string(), &key, &response],
            )
            .map(|_| ())
        })
    }

    fn drop_key(&self, session: &Uuid, key: &str) -> Result<()> {
        self.0.with(|c| {
            c.execute(
                "DELETE FROM cra_idempotency WHERE session_id = $1 AND key = $2 AND response IS NULL",
                &[&session.to_string(), &key],
            )
            .map(|_| ())
        })
    }
}
