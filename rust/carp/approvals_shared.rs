//! Approvals kept by a store several runtimes share (PostgreSQL). Each
//! approval's state is a document there; every step on it (an execution at
//! the gate, a grant, a rejection, a grant given back) loads the document
//! under the store's lock on it, runs the same step as a runtime alone
//! would, and stores the result before the lock is released. So an
//! approval granted through one replica lets an execution run on another,
//! and a once-grant is used once across all of them. The bounds on
//! undecided approvals stay per runtime.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{uncount, Approval, Approvals, Grant, Pending};
use crate::error::Result;
use crate::time::Micros;

/// What a shared store does for approvals.
pub trait SharedApprovals: Send + Sync {
    /// Stores a new approval's document.
    fn insert(
        &self,
        approval_id: &Uuid,
        session_id: &Uuid,
        expires_at: Micros,
        doc: &str,
    ) -> Result<()>;
    /// Runs `step` on the stored document (None: not stored) while holding
    /// the store's lock on it, and stores what `step` returns (if anything).
    fn update(
        &self,
        approval_id: &Uuid,
        step: &mut dyn FnMut(Option<&str>) -> Option<String>,
    ) -> Result<()>;
    /// The stored document of one approval, without a lock.
    fn read(&self, approval_id: &Uuid) -> Result<Option<String>>;
    /// The ids and documents of the approvals that have not expired (of a
    /// session).
    fn listed(&self, session: Option<&Uuid>, now: Micros) -> Result<Vec<(Uuid, String)>>;
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    session_id: Uuid,
    resolution_id: Uuid,
    expires_at: Micros,
    rejected: Option<String>,
    pending: Vec<Pending>,
    grants: Vec<Grant>,
}

impl Approvals {
    /// Keeps every approval's state in `store` from now on (once; a second
    /// call is refused with false).
    pub fn share(&self, store: Arc<dyn SharedApprovals>) -> bool {
        self.shared.set(store).is_ok()
    }

    /// Runs `f` on this runtime's approvals; with a shared store, as one
    /// step on the stored approval `id`, under the store's lock.
    pub(super) fn through<T>(&self, id: &Uuid, f: impl FnOnce(&Approvals) -> T) -> Result<T> {
        let Some(store) = self.shared.get() else {
            return Ok(f(self));
        };
        let mut f = Some(f);
        let mut out = None;
        store.update(id, &mut |doc| {
            if let Some(doc) = doc {
                self.adopt(id, doc);
            }
            out = f.take().map(|f| f(self));
            self.doc_of(id)
        })?;
        Ok(out.expect("the step ran"))
    }

    /// Loads approval `id` from the shared store, if there is one.
    pub(super) fn refresh(&self, id: &Uuid) -> Result<()> {
        if let Some(store) = self.shared.get() {
            if let Some(doc) = store.read(id)? {
                self.adopt(id, &doc);
            }
        }
        Ok(())
    }

    /// Loads the live approvals (of a session) from the shared store.
    pub(super) fn refresh_listed(&self, session: Option<&Uuid>, now: Micros) -> Result<()> {
        if let Some(store) = self.shared.get() {
            for (id, doc) in store.listed(session, now)? {
                self.adopt(&id, &doc);
            }
        }
        Ok(())
    }

    /// Stores an approval this runtime just opened.
    pub(super) fn store_new(&self, id: &Uuid) -> Result<()> {
        let Some(store) = self.shared.get() else {
            return Ok(());
        };
        let Some(doc) = self.doc_of(id) else {
            return Ok(());
        };
        let (session, expires) = {
            let inner = self.inner.lock();
            let a = &inner.by_id[id];
            (a.session_id, a.expires_at)
        };
        store.insert(id, &session, expires, &doc)
    }

    fn adopt(&self, id: &Uuid, doc: &str) {
        if let Ok(d) = serde_json::from_str::<Doc>(doc) {
            self.adopt_doc(*id, d);
        }
    }

    /// Replaces this runtime's copy of approval `id` with the stored one.
    fn adopt_doc(&self, id: Uuid, d: Doc) {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        let decided = d.rejected.is_some() || !d.grants.is_empty();
        let counted = match inner.by_id.get(&id) {
            Some(a) if a.counted && decided => {
                uncount(&mut inner.undecided, &a.session_id, &id);
                false
            }
            Some(a) => a.counted,
            None => {
                inner.order.push_back((d.expires_at, id));
                false
            }
        };
        inner.by_id.insert(
            id,
            Approval {
                session_id: d.session_id,
                resolution_id: d.resolution_id,
                expires_at: d.expires_at,
                rejected: d.rejected,
                pending: d.pending,
                grants: d.grants,
                counted,
            },
        );
    }

    /// This runtime's copy of approval `id` as a document.
    fn doc_of(&self, id: &Uuid) -> Option<String> {
        let inner = self.inner.lock();
        let a = inner.by_id.get(id)?;
        let doc = Doc {
            session_id: a.session_id,
            resolution_id: a.resolution_id,
            expires_at: a.expires_at,
            rejected: a.rejected.clone(),
            pending: a.pending.clone(),
            grants: a.grants.clone(),
        };
        serde_json::to_string(&doc).ok()
    }
}
