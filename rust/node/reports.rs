//! Core values as the JSON `node/index.js` parses: sessions, chain and
//! file reports, approvals, atlas summaries. Keys are camelCase, as JS
//! code reads them.

use serde_json::{json, Value};

use crate::atlas::model::Atlas;
use crate::carp::approvals::{Decision, Pending};
use crate::runtime::session::Session;
use crate::time::format_timestamp;
use crate::trace::verify::ChainVerification;
use crate::trace::verify_file::FileVerification;

pub fn session(s: &Session) -> Value {
    json!({
        "sessionId": s.session_id.to_string(),
        "traceId": s.trace_id.to_string(),
        "rootSpanId": s.root_span.to_string(),
        "agentId": s.agent_id,
        "goal": s.goal,
        "parentSessionId": s.parent_session_id.map(|p| p.to_string()),
        "status": s.status().as_str(),
        "createdAt": format_timestamp(s.created_micros),
        "endedAt": s.ended_micros().map(format_timestamp),
        "endReason": s.end_reason(),
    })
}

/// One chain's verification (Python's `ChainReport`).
pub fn chain(c: &ChainVerification) -> Value {
    let fault = c.fault.as_ref();
    json!({
        "valid": c.valid(),
        "error": fault.map(|f| f.kind.as_str()),
        "index": fault.map(|f| f.index),
        "line": fault.and_then(|f| f.line),
        "message": fault.map(|f| f.message.clone()),
        "eventCount": c.event_count,
        "algorithm": c.algorithm.map(|a| a.as_str()),
        "sessionId": c.session_id,
        "anchoredAt": c.anchored_at,
    })
}

/// A file's verification (Python's `FileReport`).
pub fn file(f: &FileVerification) -> Value {
    json!({
        "valid": f.valid(),
        "sessions": f.sessions.iter().map(chain).collect::<Vec<_>>(),
        "eventCount": f.event_count(),
        "lines": f.lines,
        "bytes": f.bytes,
        "badLineCount": f.bad_line_count,
        "badLines": f.bad_lines.iter().map(|b| json!({"line": b.line, "message": b.message})).collect::<Vec<_>>(),
        "tornLineCount": f.torn_line_count,
        "tornTail": f.torn_tail.is_some(),
        "anchorFile": f.anchor_file.as_ref().map(|p| p.display().to_string()),
        "anchorFaults": f.anchor_faults,
        "keyId": f.signatures.as_ref().map(|(k, _)| k.clone()),
    })
}

pub fn pending(p: &Pending) -> Value {
    let parameters: Value = serde_json::from_str(&p.parameters).unwrap_or(Value::Null);
    json!({
        "approvalId": p.approval_id.to_string(),
        "sessionId": p.session_id.to_string(),
        "resolutionId": p.resolution_id.to_string(),
        "actionId": &*p.action_id,
        "parametersHash": p.parameters_hash,
        "parameters": parameters,
        "requestedAt": format_timestamp(p.requested_at),
    })
}

pub fn decision(d: &Decision) -> Value {
    json!({
        "approvalId": d.approval_id.to_string(),
        "sessionId": d.session_id.to_string(),
        "resolutionId": d.resolution_id.to_string(),
        "actionId": d.action_id.as_deref(),
        "parametersHash": d.parameters_hash,
        "scope": d.scope.as_str(),
        "approver": d.approver,
        "note": d.note,
        "granted": d.granted,
    })
}

pub fn atlas(a: &Atlas) -> Value {
    let ids = |it: &mut dyn Iterator<Item = String>| it.collect::<Vec<_>>();
    json!({
        "atlasId": &*a.atlas_id,
        "version": a.version.to_string(),
        "name": a.name,
        "description": a.description,
        "actions": ids(&mut a.actions.iter().map(|x| x.action_id.to_string())),
        "policies": ids(&mut a.policies.iter().map(|x| x.policy_id.to_string())),
        "capabilities": ids(&mut a.capabilities.iter().map(|x| x.capability_id.to_string())),
        "contextPacks": ids(&mut a.packs.iter().map(|x| x.pack_id.to_string())),
        "defaultTtlSeconds": a.default_ttl_seconds,
    })
}
