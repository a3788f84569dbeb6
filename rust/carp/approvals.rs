//! Human approvals: what waits for a decision, and what was granted.
//! By default a grant covers one action with exactly the parameters the
//! human saw, once; the approver may instead grant the action for the rest
//! of the resolution's life. Approvals expire with their resolution.

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{CoreError, Result};
use crate::ids::IdMap;
use crate::time::Micros;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GrantScope {
    /// This action with these parameters, one execution.
    Once,
    /// This action, any parameters, until the resolution expires.
    Resolution,
}

impl GrantScope {
    pub fn parse(s: &str) -> Result<GrantScope> {
        match s {
            "once" => Ok(GrantScope::Once),
            "resolution" => Ok(GrantScope::Resolution),
            _ => Err(CoreError::invalid(
                "INVALID_REQUEST",
                "/scope",
                format!("{s:?} is not a grant scope (once, resolution)"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            GrantScope::Once => "once",
            GrantScope::Resolution => "resolution",
        }
    }
}

/// Undecided approvals one session may hold at once. Opening one more is
/// refused (`TOO_MANY_PENDING`, 429) until some are decided or expire: no
/// approval, of this session or another, is ever dropped to make room.
/// An approval stops counting when it is granted or rejected, or when its
/// resolution expires.
pub const MAX_PENDING_PER_SESSION: usize = 1_000;

/// Longest note accepted on a decision, in characters.
pub const MAX_NOTE: usize = 1_000;

/// A decision's note goes into its hashed event: at most `MAX_NOTE`
/// characters, none of them a control character (line breaks included).
pub fn check_note(note: Option<&str>) -> Result<()> {
    let Some(n) = note else { return Ok(()) };
    let fault = if n.chars().any(char::is_control) {
        "must not contain control characters (line breaks, tabs, escapes)".to_string()
    } else if n.chars().count() > MAX_NOTE {
        format!("is longer than {MAX_NOTE} characters")
    } else {
        return Ok(());
    };
    Err(CoreError::invalid("INVALID_NOTE", "/note", fault))
}

/// An execution waiting for a human.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub approval_id: Uuid,
    pub session_id: Uuid,
    pub resolution_id: Uuid,
    pub action_id: Arc<str>,
    pub parameters_hash: String,
    /// Canonical JSON of the parameters the human is asked about.
    pub parameters: Arc<str>,
    pub requested_at: Micros,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Grant {
    action_id: Arc<str>,
    parameters_hash: Option<String>,
    scope: GrantScope,
    used: bool,
}

/// A decision as recorded (and returned to the approver).
#[derive(Debug, Clone)]
pub struct Decision {
    pub approval_id: Uuid,
    pub session_id: Uuid,
    pub resolution_id: Uuid,
    pub action_id: Option<Arc<str>>,
    pub parameters_hash: Option<String>,
    pub scope: GrantScope,
    pub approver: String,
    pub note: Option<String>,
    pub granted: bool,
}

#[derive(Debug)]
struct Approval {
    session_id: Uuid,
    resolution_id: Uuid,
    expires_at: Micros,
    rejected: Option<String>,
    pending: Vec<Pending>,
    grants: Vec<Grant>,
    /// Still counted against its session (opened, not yet decided).
    counted: bool,
}

/// Where a gated execution stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    Granted,
    Rejected { approver: String },
    Waiting,
}

/// Approvals by id, with their ids in the order they were opened. They
/// are opened with their resolution, so that order is close to expiry
/// order: opening one drops expired approvals from the front.
///
/// Bounds, none of which ever drops a live approval: a session holds at
/// most `per_session` undecided ones ([`MAX_PENDING_PER_SESSION`]), and the
/// runtime at most `max` in all (a memory bound, one per kept resolution);
/// at either bound the expired ones are dropped and, if that is not enough,
/// the new one is refused with `TOO_MANY_PENDING`.
pub struct Approvals {
    max: usize,
    per_session: usize,
    inner: Mutex<Inner>,
    /// A store several runtimes share: each approval's state lives there
    /// and every step on it runs under the store's lock (`shared`).
    shared: OnceLock<Arc<dyn shared::SharedApprovals>>,
}

struct Inner {
    by_id: IdMap<Approval>,
    order: VecDeque<(Micros, Uuid)>,
    /// Each session's undecided approvals, in open order (none empty).
    undecided: IdMap<VecDeque<(Micros, Uuid)>>,
    /// No approval held expires before this (a lower bound).
    next_expiry: Micros,
}

/// What a grant asks for (the arguments of [`Approvals::approve`]).
#[derive(Clone, Copy)]
struct GrantAsk<'a> {
    approver: &'a str,
    note: Option<&'a str>,
    action_id: Option<&'a str>,
    parameters_hash: Option<&'a str>,
    scope: GrantScope,
}

impl Approvals {
    /// At most `max` approvals in all, [`MAX_PENDING_PER_SESSION`]
    /// undecided ones per session.
    pub fn new(max: usize) -> Self {
        Self::with_session_bound(max, MAX_PENDING_PER_SESSION)
    }

    /// With another per-session bound (tests).
    pub fn with_session_bound(max: usize, per_session: usize) -> Self {
        Approvals {
            max: max.max(1),
            per_session: per_session.max(1),
            inner: Mutex::new(Inner {
                by_id: IdMap::default(),
                order: VecDeque::new(),
                undecided: IdMap::default(),
                next_expiry: Micros::MAX,
            }),
            shared: OnceLock::new(),
        }
    }

    /// Approvals held (live, expired but not yet dropped, decided).
    pub fn len(&self) -> usize {
        self.inner.lock().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Opens an approval for a resolution that needs one, or refuses it
    /// (`TOO_MANY_PENDING`) when its session already has
    /// `per_session` undecided approvals, or the runtime `max` approvals,
    /// that have not expired. Nothing held is dropped but expired approvals.
    pub fn open(
        &self,
        approval_id: Uuid,
        session_id: Uuid,
        resolution_id: Uuid,
        expires_at: Micros,
        now: Micros,
    ) -> Result<()> {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        while let Some(&(expires, id)) = inner.order.front() {
            if expires > now {
                break;
            }
            inner.order.pop_front();
            inner.forget(&id);
        }
        if let Some(q) = inner.undecided.get_mut(&session_id) {
            if q.len() >= self.per_session {
                // Expired ones stop counting (they are still held, and
                // answer APPROVAL_EXPIRED, until dropped from the front).
                q.retain(|&(expires, _)| expires > now);
                if q.len() >= self.per_session {
                    return Err(CoreError::invalid(
                        "TOO_MANY_PENDING",
                        "/requester/session_id",
                        format!(
                            "this session has {} approvals waiting for a decision (at most {}); decide or let expire some of them first",
                            q.len(),
                            self.per_session
                        ),
                    ));
                }
            }
        }
        if inner.by_id.len() >= self.max {
            if now >= inner.next_expiry {
                inner.drop_expired(now);
            }
            if inner.by_id.len() >= self.max {
                return Err(CoreError::invalid(
                    "TOO_MANY_PENDING",
                    "/requester/session_id",
                    format!(
                        "the runtime holds as many approvals as it keeps ({}) and none has expired; decide or let expire some first",
                        self.max
                    ),
                ));
            }
        }
        inner.order.push_back((expires_at, approval_id));
        inner
            .undecided
            .entry(session_id)
            .or_default()
            .push_back((expires_at, approval_id));
        inner.next_expiry = inner.next_expiry.min(expires_at);
        inner.by_id.insert(
            approval_id,
            Approval {
                session_id,
                resolution_id,
                expires_at,
                rejected: None,
                pending: Vec::new(),
                grants: Vec::new(),
                counted: true,
            },
        );
        drop(guard);
        if let Err(e) = self.store_new(&approval_id) {
            self.discard(&approval_id);
            return Err(e);
        }
        Ok(())
    }

    /// Forgets an approval just opened whose resolution could not be kept.
    pub fn discard(&self, approval_id: &Uuid) {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        if let Some(at) = inner.order.iter().rposition(|&(_, id)| id == *approval_id) {
            inner.order.remove(at);
        }
        inner.forget(approval_id);
    }

    /// Undecided approvals of a session (expired ones included until an
    /// opening at the bound drops them from the count).
    pub fn undecided(&self, session_id: &Uuid) -> usize {
        self.inner
            .lock()
            .undecided
            .get(session_id)
            .map_or(0, VecDeque::len)
    }

    /// Checks (and, if granted once, uses up) the grant for an execution;
    /// a waiting execution is listed as pending.
    pub fn gate(&self, pending: Pending, now: Micros) -> Result<Gate> {
        let id = pending.approval_id;
        self.through(&id, |s| s.gate_here(pending, now))
    }

    fn gate_here(&self, pending: Pending, now: Micros) -> Gate {
        let mut inner = self.inner.lock();
        let map = &mut inner.by_id;
        let Some(a) = map
            .get_mut(&pending.approval_id)
            .filter(|a| a.expires_at > now)
        else {
            return Gate::Waiting;
        };
        if let Some(approver) = &a.rejected {
            return Gate::Rejected {
                approver: approver.clone(),
            };
        }
        let found = a.grants.iter_mut().find(|g| {
            !g.used
                && g.action_id == pending.action_id
                && (g.scope == GrantScope::Resolution
                    || g.parameters_hash.as_deref() == Some(pending.parameters_hash.as_str()))
        });
        if let Some(g) = found {
            if g.scope == GrantScope::Once {
                g.used = true;
            }
            a.pending.retain(|p| {
                !(p.action_id == pending.action_id && p.parameters_hash == pending.parameters_hash)
            });
            return Gate::Granted;
        }
        let known = a.pending.iter().any(|p| {
            p.action_id == pending.action_id && p.parameters_hash == pending.parameters_hash
        });
        if !known {
            a.pending.push(pending);
        }
        Gate::Waiting
    }

    /// Gives back a once-grant that was taken for an execution that then
    /// did not run (a limit or the parameters stopped it).
    pub fn restore(&self, approval_id: &Uuid, action_id: &str, parameters_hash: &str) {
        // Not given back if the shared store fails: the grant stays used,
        // which errs on the side of asking the human again.
        let _ = self.through(approval_id, |s| {
            s.restore_here(approval_id, action_id, parameters_hash)
        });
    }

    fn restore_here(&self, approval_id: &Uuid, action_id: &str, parameters_hash: &str) {
        let mut inner = self.inner.lock();
        let map = &mut inner.by_id;
        if let Some(a) = map.get_mut(approval_id) {
            if let Some(g) = a.grants.iter_mut().find(|g| {
                g.used
                    && &*g.action_id == action_id
                    && g.parameters_hash.as_deref() == Some(parameters_hash)
            }) {
                g.used = false;
            }
        }
    }

    /// Grants: the pending execution named by `action_id`/`parameters_hash`
    /// (or the only one pending); with scope `resolution`, `action_id` alone.
    #[allow(clippy::too_many_arguments)]
    pub fn approve(
        &self,
        approval_id: &Uuid,
        approver: &str,
        note: Option<&str>,
        action_id: Option<&str>,
        parameters_hash: Option<&str>,
        scope: GrantScope,
        now: Micros,
    ) -> Result<Decision> {
        check_note(note)?;
        let ask = GrantAsk {
            approver,
            note,
            action_id,
            parameters_hash,
            scope,
        };
        self.through(approval_id, |s| s.approve_here(approval_id, &ask, now))?
    }

    fn approve_here(
        &self,
        approval_id: &Uuid,
        ask: &GrantAsk<'_>,
        now: Micros,
    ) -> Result<Decision> {
        let GrantAsk {
            approver,
            note,
            action_id,
            parameters_hash,
            scope,
        } = *ask;
        let mut guard = self.inner.lock();
        let Inner {
            by_id: map,
            undecided,
            ..
        } = &mut *guard;
        let a = live(map, approval_id, now)?;
        if a.rejected.is_some() {
            return Err(CoreError::invalid(
                "APPROVAL_REJECTED",
                "/approval_id",
                "this approval was already rejected",
            ));
        }
        let candidates: Vec<&Pending> = a
            .pending
            .iter()
            .filter(|p| action_id.is_none_or(|x| &*p.action_id == x))
            .filter(|p| parameters_hash.is_none_or(|h| p.parameters_hash == h))
            .collect();
        let (action, hash) = match (candidates.as_slice(), scope, action_id) {
            ([one], _, _) => (Arc::clone(&one.action_id), Some(one.parameters_hash.clone())),
            ([], GrantScope::Resolution, Some(x)) => (Arc::from(x), None),
            ([], GrantScope::Once, Some(x)) if parameters_hash.is_some() => {
                (Arc::from(x), parameters_hash.map(str::to_string))
            }
            ([], _, _) => {
                return Err(CoreError::invalid(
                    "APPROVAL_NOT_PENDING",
                    "/approval_id",
                    "nothing is waiting for this approval; name action_id (and parameters_hash, or scope \"resolution\")",
                ))
            }
            (_, _, _) => {
                return Err(CoreError::invalid(
                    "APPROVAL_AMBIGUOUS",
                    "/action_id",
                    format!("{} executions wait for this approval; name action_id and parameters_hash", candidates.len()),
                ))
            }
        };
        if std::mem::take(&mut a.counted) {
            uncount(undecided, &a.session_id, approval_id);
        }
        a.grants.push(Grant {
            action_id: Arc::clone(&action),
            parameters_hash: if scope == GrantScope::Once {
                hash.clone()
            } else {
                None
            },
            scope,
            used: false,
        });
        Ok(Decision {
            approval_id: *approval_id,
            session_id: a.session_id,
            resolution_id: a.resolution_id,
            action_id: Some(action),
            parameters_hash: hash,
            scope,
            approver: approver.to_string(),
            note: note.map(str::to_string),
            granted: true,
        })
    }

    /// Rejects: every action gated by this approval is denied from now on.
    pub fn reject(
        &self,
        approval_id: &Uuid,
        approver: &str,
        note: Option<&str>,
        now: Micros,
    ) -> Result<(Decision, Vec<Pending>)> {
        check_note(note)?;
        self.through(approval_id, |s| {
            s.reject_here(approval_id, approver, note, now)
        })?
    }

    fn reject_here(
        &self,
        approval_id: &Uuid,
        approver: &str,
        note: Option<&str>,
        now: Micros,
    ) -> Result<(Decision, Vec<Pending>)> {
        let mut guard = self.inner.lock();
        let Inner {
            by_id: map,
            undecided,
            ..
        } = &mut *guard;
        let a = live(map, approval_id, now)?;
        if std::mem::take(&mut a.counted) {
            uncount(undecided, &a.session_id, approval_id);
        }
        a.rejected = Some(approver.to_string());
        let waiting = std::mem::take(&mut a.pending);
        let first = waiting.first();
        Ok((
            Decision {
                approval_id: *approval_id,
                session_id: a.session_id,
                resolution_id: a.resolution_id,
                action_id: first.map(|p| Arc::clone(&p.action_id)),
                parameters_hash: first.map(|p| p.parameters_hash.clone()),
                scope: GrantScope::Once,
                approver: approver.to_string(),
                note: note.map(str::to_string),
                granted: false,
            },
            waiting,
        ))
    }

    /// Where one waiting execution stands, without using a grant:
    /// `granted` (an unused grant covers it), `rejected`, `expired` (or
    /// unknown), else `waiting`.
    pub fn state(
        &self,
        approval_id: &Uuid,
        action_id: &str,
        parameters_hash: &str,
        now: Micros,
    ) -> &'static str {
        if self.refresh(approval_id).is_err() {
            return "waiting"; // the shared store cannot say now; ask again
        }
        let inner = self.inner.lock();
        let Some(a) = inner.by_id.get(approval_id).filter(|a| a.expires_at > now) else {
            return "expired";
        };
        if a.rejected.is_some() {
            return "rejected";
        }
        let granted = a.grants.iter().any(|g| {
            !g.used
                && &*g.action_id == action_id
                && (g.scope == GrantScope::Resolution
                    || g.parameters_hash.as_deref() == Some(parameters_hash))
        });
        if granted {
            "granted"
        } else {
            "waiting"
        }
    }

    /// Executions waiting for a decision, oldest first (one session, or all).
    pub fn pending(&self, session: Option<&Uuid>, now: Micros) -> Result<Vec<Pending>> {
        self.refresh_listed(session, now)?;
        let inner = self.inner.lock();
        let map = &inner.by_id;
        let mut out: Vec<Pending> = map
            .values()
            .filter(|a| a.expires_at > now && a.rejected.is_none())
            .filter(|a| session.is_none_or(|s| &a.session_id == s))
            .flat_map(|a| a.pending.iter().cloned())
            .collect();
        out.sort_by_key(|p| p.requested_at);
        Ok(out)
    }

    /// The session an approval belongs to.
    pub fn session_of(&self, approval_id: &Uuid) -> Result<Option<Uuid>> {
        self.refresh(approval_id)?;
        Ok(self
            .inner
            .lock()
            .by_id
            .get(approval_id)
            .map(|a| a.session_id))
    }
}

#[path = "approvals_inner.rs"]
mod inner;
use inner::{live, uncount};

#[path = "approvals_shared.rs"]
pub mod shared;

#[cfg(test)]
#[path = "approvals_unit_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "approvals_tests.rs"]
mod more_tests;
