//! The TRACE events of a resolve, rendered on the flush thread from the
//! resolution itself (the caller pushes one record, not eight).

use std::sync::Arc;

use crate::carp::resolution::Resolution;
use crate::trace::chain::EventSource;
use crate::trace::event::EventType;
use crate::trace::payload::{str_list, Payload};

/// A resolve as the events it becomes.
pub struct ResolveTrace(pub Arc<Resolution>);

/// The payload of `carp.request.received` for a resolution's request.
pub fn request_received(r: &Resolution, extra: Option<(&str, &str)>) -> Box<str> {
    let e = &r.echo;
    let mut p = Payload::new();
    // Keys in sorted order: action_id, atlas_ids, context_hints, goal,
    // operation, request_id, required_capabilities, resolution_id, risk_tier.
    if let Some((action_id, _)) = extra {
        p.str("action_id", action_id);
    }
    p.raw("atlas_ids", &str_list(&e.atlas_ids));
    if let Some(h) = &e.context_hints {
        p.raw("context_hints", &str_list(h));
    }
    p.str("goal", &e.goal)
        .str("operation", e.operation.as_str());
    p.str("request_id", &r.request_id.to_string());
    if let Some(c) = &e.required_capabilities {
        p.raw("required_capabilities", &str_list(c));
    }
    if let Some((_, resolution_id)) = extra {
        p.str("resolution_id", resolution_id);
    }
    if let Some(t) = e.risk_tier {
        p.str("risk_tier", t.as_str());
    }
    p.finish()
}

impl EventSource for ResolveTrace {
    fn count(&self) -> usize {
        2 + self.0.evaluations.len() + self.0.blocks.len()
    }

    fn render(&self, emit: &mut dyn FnMut(EventType, Box<str>)) {
        let r = &*self.0;
        emit("carp.request.received".into(), request_received(r, None));
        for e in &r.evaluations {
            let mut p = Payload::new();
            p.str("action_id", &r.action(e).action_id);
            p.str("policy_id", r.policy_id(e));
            if e.outcome == crate::carp::resolution::Outcome::Deny {
                p.str("reason", r.denial(e).1);
            }
            p.str("result", e.outcome.as_str());
            emit("policy.evaluated".into(), p.finish());
        }
        for b in &r.blocks {
            let (block, source, priority) = r.block(b);
            let mut p = Payload::new();
            p.str("block_id", &block.block_id)
                .str("content_type", &block.content_type)
                .int("priority", priority)
                .str("source", source)
                .int("token_count", block.token_estimate as i64);
            emit("context.injected".into(), p.finish());
        }
        let allowed = r.allowed().count() as i64;
        let mut p = Payload::new();
        p.int("allowed_count", allowed)
            .int("context_block_count", r.blocks.len() as i64)
            .str("decision_type", r.decision.as_str())
            .int("denied_count", r.evaluations.len() as i64 - allowed)
            .str("request_id", &r.request_id.to_string())
            .str("resolution_id", &r.resolution_id.to_string())
            .int("ttl_seconds", r.ttl_seconds as i64);
        emit("carp.resolution.completed".into(), p.finish());
    }
}
