//! Human approvals: what waits for a decision, and what was granted.
//! By default a grant covers one action with exactly the parameters the
//! human saw, once; the approver may instead grant the action for the rest
//! of the resolution's life. Approvals expire with their resolution.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use uuid::Uuid;

use crate::error::{CoreError, Result};
use crate::time::Micros;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// An execution waiting for a human.
#[derive(Debug, Clone)]
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

#[derive(Debug, Clone)]
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
}

/// Where a gated execution stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    Granted,
    Rejected { approver: String },
    Waiting,
}

#[derive(Default)]
pub struct Approvals {
    by_id: Mutex<HashMap<Uuid, Approval>>,
}

impl Approvals {
    pub fn new() -> Self {
        Approvals::default()
    }

    /// Opens an approval for a resolution that needs one.
    pub fn open(
        &self,
        approval_id: Uuid,
        session_id: Uuid,
        resolution_id: Uuid,
        expires_at: Micros,
        now: Micros,
    ) {
        let mut map = self.by_id.lock();
        map.retain(|_, a| a.expires_at > now);
        map.insert(
            approval_id,
            Approval {
                session_id,
                resolution_id,
                expires_at,
                rejected: None,
                pending: Vec::new(),
                grants: Vec::new(),
            },
        );
    }

    /// Checks (and, if granted once, uses up) the grant for an execution;
    /// a waiting execution is listed as pending.
    pub fn gate(&self, pending: Pending, now: Micros) -> Gate {
        let mut map = self.by_id.lock();
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
        let mut map = self.by_id.lock();
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
        let mut map = self.by_id.lock();
        let a = live(&mut map, approval_id, now)?;
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
        let mut map = self.by_id.lock();
        let a = live(&mut map, approval_id, now)?;
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

    /// Executions waiting for a decision, oldest first (one session, or all).
    pub fn pending(&self, session: Option<&Uuid>, now: Micros) -> Vec<Pending> {
        let map = self.by_id.lock();
        let mut out: Vec<Pending> = map
            .values()
            .filter(|a| a.expires_at > now && a.rejected.is_none())
            .filter(|a| session.is_none_or(|s| &a.session_id == s))
            .flat_map(|a| a.pending.iter().cloned())
            .collect();
        out.sort_by_key(|p| p.requested_at);
        out
    }

    /// The session an approval belongs to.
    pub fn session_of(&self, approval_id: &Uuid) -> Option<Uuid> {
        self.by_id.lock().get(approval_id).map(|a| a.session_id)
    }
}

fn live<'a>(
    map: &'a mut HashMap<Uuid, Approval>,
    id: &Uuid,
    now: Micros,
) -> Result<&'a mut Approval> {
    match map.get_mut(id) {
        None => Err(CoreError::ApprovalNotFound(id.to_string())),
        Some(a) if a.expires_at <= now => Err(CoreError::ApprovalExpired(id.to_string())),
        Some(a) => Ok(a),
    }
}
