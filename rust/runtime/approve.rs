//! Approvals on the runtime: granting and rejecting them, each a hashed
//! trace event naming the approver, the scope and the approved
//! `parameters_hash`.

use uuid::Uuid;

use crate::carp::approvals::{Decision, GrantScope, Pending};
use crate::error::{CoreError, Result};
use crate::runtime::session::SessionStatus;
use crate::runtime::state::{Runtime, Wait};
use crate::trace::chain::SpanRef;
use crate::trace::payload::Payload;

impl Runtime {
    /// Grants an approval (see `Approvals::approve` for what it covers).
    #[allow(clippy::too_many_arguments)]
    pub fn approve(
        &self,
        approval_id: &Uuid,
        approver: &str,
        note: Option<&str>,
        action_id: Option<&str>,
        parameters_hash: Option<&str>,
        scope: GrantScope,
        wait: &impl Wait,
    ) -> Result<Decision> {
        self.approval_session_open(approval_id)?;
        let d = self.approvals.approve(
            approval_id,
            approver,
            note,
            action_id,
            parameters_hash,
            scope,
            self.now(),
        )?;
        self.record_decision(&d, "action.approved", wait)?;
        Ok(d)
    }

    /// Rejects an approval: the actions it gates are denied from now on.
    pub fn reject(
        &self,
        approval_id: &Uuid,
        approver: &str,
        note: Option<&str>,
        wait: &impl Wait,
    ) -> Result<Decision> {
        self.approval_session_open(approval_id)?;
        let (d, _waiting) = self
            .approvals
            .reject(approval_id, approver, note, self.now())?;
        self.record_decision(&d, "action.denied", wait)?;
        Ok(d)
    }

    /// A decision is recorded in its session's chain, so that session must
    /// be open before anything is decided (nothing half-done).
    fn approval_session_open(&self, approval_id: &Uuid) -> Result<()> {
        let Some(sid) = self.approvals.session_of(approval_id)? else {
            return Err(CoreError::ApprovalNotFound(approval_id.to_string()));
        };
        let s = self.session(&sid)?;
        self.check_lifetime(&s)?;
        if s.status() != SessionStatus::Active {
            return Err(CoreError::SessionEnded(sid.to_string()));
        }
        Ok(())
    }

    /// Where one waiting execution stands (see `Approvals::state`).
    pub fn approval_state(
        &self,
        approval_id: &Uuid,
        action_id: &str,
        parameters_hash: &str,
    ) -> &'static str {
        self.approvals
            .state(approval_id, action_id, parameters_hash, self.now())
    }

    pub fn pending_approvals(&self, session_id: Option<&Uuid>) -> Result<Vec<Pending>> {
        self.approvals.pending(session_id, self.now())
    }

    fn record_decision(
        &self,
        d: &Decision,
        event_type: &'static str,
        wait: &impl Wait,
    ) -> Result<()> {
        let session = self.session(&d.session_id)?;
        let mut p = Payload::new();
        p.str("action_id", d.action_id.as_deref().unwrap_or("*"));
        p.str("approval_id", &d.approval_id.to_string())
            .str("approver", &d.approver);
        if let Some(n) = &d.note {
            p.str("note", n);
        }
        if let Some(h) = &d.parameters_hash {
            p.str("parameters_hash", h);
        }
        if !d.granted {
            p.str("policy_id", "human_approval")
                .str("reason", "approval_rejected");
        }
        p.str("resolution_id", &d.resolution_id.to_string())
            .str("scope", d.scope.as_str());
        let rec = self.record_for(&session, event_type.into(), p.finish(), SpanRef::Fresh);
        self.push(&session, rec, wait)
    }
}
