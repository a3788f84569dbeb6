//! The validate operation on the runtime (CARP §6): answers valid or
//! invalid with every fault's path; changes nothing but its
//! `carp.request.received` event.

use serde_json::Value;

use crate::carp::request::{parse_request, CarpRequest};
use crate::carp::resolution::Outcome;
use crate::error::{CoreError, Fault, Result};
use crate::json::fields::schema_faults;
use crate::runtime::admit::check_agent;
use crate::runtime::execute_checks::validators;
use crate::runtime::session::SessionStatus;
use crate::runtime::state::{Runtime, Wait};
use crate::trace::chain::SpanRef;
use crate::trace::payload::{str_list, Payload};

#[derive(Debug, Clone)]
pub struct ValidationReport {
    pub valid: bool,
    pub errors: Vec<Fault>,
}

impl Runtime {
    pub fn validate_value(&self, v: &Value, wait: &impl Wait) -> ValidationReport {
        let req = match parse_request(v) {
            Ok(r) => r,
            Err(e) => {
                return ValidationReport {
                    valid: false,
                    errors: e.faults().to_vec(),
                }
            }
        };
        let errors = match self.validate_request(&req, wait) {
            Ok(()) => Vec::new(),
            Err(e) if !e.faults().is_empty() => e.faults().to_vec(),
            Err(e) => vec![Fault::new(e.path().unwrap_or_default(), e.to_string())],
        };
        ValidationReport {
            valid: errors.is_empty(),
            errors,
        }
    }

    fn validate_request(&self, req: &CarpRequest, wait: &impl Wait) -> Result<()> {
        let session = self
            .session(&req.session_id)
            .map_err(|e| at("/requester/session_id", e))?;
        self.check_lifetime(&session)
            .map_err(|e| at("/requester/session_id", e))?;
        if session.status() != SessionStatus::Active {
            return Err(at(
                "/requester/session_id",
                CoreError::SessionEnded(req.session_id.to_string()),
            ));
        }
        check_agent(req, &session).map_err(|e| at("/requester/agent_id", e))?;
        // §3 rules 2 and 3, checked without claiming the request id.
        let now = self.now();
        self.check_skew(req, now)?;
        if session.has_request(&req.request_id) {
            return Err(at(
                "/request_id",
                CoreError::DuplicateRequest(req.request_id.to_string()),
            ));
        }
        let mut p = Payload::new();
        p.raw(
            "atlas_ids",
            &str_list(req.atlas_ids.as_deref().unwrap_or_default()),
        );
        if let Some(h) = &req.context_hints {
            p.raw("context_hints", &str_list(h));
        }
        p.str("goal", &req.goal)
            .str("operation", "validate")
            .str("request_id", &req.request_id.to_string());
        if let Some(c) = &req.required_capabilities {
            p.raw("required_capabilities", &str_list(c));
        }
        if let Some(t) = req.risk_tier {
            p.str("risk_tier", t.as_str());
        }
        let rec = self.record_for(
            &session,
            "carp.request.received".into(),
            p.finish(),
            SpanRef::Fresh,
        );
        self.push(&session, rec, wait)?;
        let Some(exec) = &req.execution else {
            return Ok(());
        };
        let res = self
            .resolution_for(&session, &exec.resolution_id, now)
            .map_err(|e| at("/execution/resolution_id", e))?;
        let eval = res
            .evaluation(&exec.action_id)
            .filter(|e| e.outcome != Outcome::Deny)
            .ok_or_else(|| {
                at(
                    "/execution/action_id",
                    CoreError::invalid(
                        "ACTION_NOT_ALLOWED",
                        "",
                        format!("{} is not allowed by this resolution", exec.action_id),
                    ),
                )
            })?;
        // The schemas execute would apply: the action as the resolution was
        // issued and, if it was loaded again since, as loaded now.
        let then = res.action(eval);
        let snap = self.snapshot();
        let now_action = snap
            .compiled
            .actions
            .get(&*then.action_id)
            .map(|&(a, x)| &snap.atlases[a as usize].actions[x as usize])
            .unwrap_or(then);
        for validator in validators(then, now_action).into_iter().flatten() {
            let faults = schema_faults(validator, &exec.parameters, "/execution/parameters");
            if !faults.is_empty() {
                return Err(CoreError::InvalidRequest(faults));
            }
        }
        Ok(())
    }
}

fn at(path: &str, e: CoreError) -> CoreError {
    CoreError::InvalidRequest(vec![Fault::new(path, e.message())])
}
