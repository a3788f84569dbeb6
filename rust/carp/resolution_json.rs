//! A resolution as the protocol's JSON (built only when asked for).

use serde_json::{json, Map, Value};

use crate::carp::resolution::{Evaluation, Resolution};
use crate::time::format_timestamp;

fn schema(s: &Option<std::sync::Arc<Value>>) -> Value {
    s.as_ref().map(|v| (**v).clone()).unwrap_or(Value::Null)
}

/// One entry of `allowed_actions`.
pub fn allowed_action(r: &Resolution, e: &Evaluation) -> Value {
    let a = r.action(e);
    let mut m = Map::new();
    m.insert("action_id".into(), json!(&*a.action_id));
    m.insert("name".into(), json!(&*a.name));
    m.insert("description".into(), json!(&*a.description));
    m.insert("parameters_schema".into(), schema(&a.parameters_schema));
    m.insert("returns_schema".into(), schema(&a.returns_schema));
    m.insert("risk_tier".into(), json!(a.risk_tier.as_str()));
    m.insert(
        "requires_confirmation".into(),
        json!(r.requires_confirmation(e)),
    );
    m.insert("idempotent".into(), json!(a.idempotent));
    if let Some(p) = e.rate_limit {
        if let crate::atlas::policy::Limit::Rate {
            max_calls,
            window_seconds,
            ..
        } = &r.snapshot.policy(p).limit
        {
            m.insert(
                "rate_limit".into(),
                json!({"max_calls": max_calls, "window_seconds": number(*window_seconds)}),
            );
        }
    }
    Value::Object(m)
}

/// Whole seconds as an integer, anything else as a float.
fn number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        json!(x as i64)
    } else {
        json!(x)
    }
}

pub fn to_value(r: &Resolution) -> Value {
    let allowed: Vec<Value> = r.allowed().map(|e| allowed_action(r, e)).collect();
    let denied: Vec<Value> = r
        .denied()
        .map(|e| {
            let (policy_id, reason) = r.denial(e);
            json!({"action_id": &*r.action(e).action_id, "reason": reason, "policy_id": policy_id})
        })
        .collect();
    let blocks: Vec<Value> = r
        .blocks
        .iter()
        .map(|b| {
            let (block, source, priority) = r.block(b);
            json!({
                "block_id": &*block.block_id,
                "source": &**source,
                "content_type": &*block.content_type,
                "content": &*block.content,
                "priority": priority,
                "token_estimate": block.token_estimate,
            })
        })
        .collect();
    let constraints: Vec<Value> = r
        .constraints
        .iter()
        .map(|&c| {
            let p = r.snapshot.policy(c);
            let params: Value = serde_json::from_str(&p.parameters_json).unwrap_or(Value::Null);
            json!({"constraint_id": &*p.policy_id, "type": p.kind.as_str(), "parameters": params})
        })
        .collect();
    json!({
        "carp_version": "1.0",
        "resolution_id": r.resolution_id.to_string(),
        "request_id": r.request_id.to_string(),
        "timestamp": format_timestamp(r.timestamp),
        "decision": {
            "type": r.decision.as_str(),
            "reason": r.reason.as_deref(),
            "approval_id": r.approval_id.map(|a| a.to_string()),
            "expires_at": format_timestamp(r.expires_at),
        },
        "context_blocks": blocks,
        "allowed_actions": allowed,
        "denied_actions": denied,
        "constraints": constraints,
        "ttl_seconds": r.ttl_seconds,
        "trace_id": r.trace_id.to_string(),
    })
}
