//! The bookkeeping under `Approvals`' lock: dropping approvals (one, or
//! every expired one) and their places in their sessions' counts, and
//! finding a live approval.

use std::collections::VecDeque;

use uuid::Uuid;

use super::{Approval, Inner};
use crate::error::{CoreError, Result};
use crate::ids::IdMap;
use crate::time::Micros;

impl Inner {
    /// Drops one approval (if held) and its place in its session's count.
    pub(super) fn forget(&mut self, id: &Uuid) {
        if let Some(a) = self.by_id.remove(id) {
            if a.counted {
                uncount(&mut self.undecided, &a.session_id, id);
            }
        }
    }

    /// Drops every expired approval, of every session. Runs only when the
    /// whole bound is reached and something may have expired.
    pub(super) fn drop_expired(&mut self, now: Micros) {
        let mut next = Micros::MAX;
        self.by_id.retain(|_, a| {
            let keep = a.expires_at > now;
            if keep {
                next = next.min(a.expires_at);
            }
            keep
        });
        self.order.retain(|&(expires, _)| expires > now);
        self.undecided.retain(|_, q| {
            q.retain(|&(expires, _)| expires > now);
            !q.is_empty()
        });
        self.next_expiry = next;
    }
}

/// Takes an approval out of its session's undecided count.
pub(super) fn uncount(undecided: &mut IdMap<VecDeque<(Micros, Uuid)>>, session: &Uuid, id: &Uuid) {
    if let Some(q) = undecided.get_mut(session) {
        if let Some(at) = q.iter().position(|&(_, x)| x == *id) {
            q.remove(at);
        }
        if q.is_empty() {
            undecided.remove(session);
        }
    }
}

pub(super) fn live<'a>(
    map: &'a mut IdMap<Approval>,
    id: &Uuid,
    now: Micros,
) -> Result<&'a mut Approval> {
    match map.get_mut(id) {
        None => Err(CoreError::ApprovalNotFound(id.to_string())),
        Some(a) if a.expires_at <= now => Err(CoreError::ApprovalExpired(id.to_string())),
        Some(a) => Ok(a),
    }
}
