//! State reconstruction: a session's state rebuilt from its trace alone —
//! the session, its resolutions, executions, approvals and the counts that
//! rate limits and budgets are kept on.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::audit::trace_reader::Recorded;

/// Rebuilds the state of every session in `events`, in order of appearance.
pub fn reconstruct(events: &[Recorded]) -> Vec<Value> {
    let mut r = Reconstructor::default();
    for e in events {
        r.push(e);
    }
    r.finish()
}

/// Rebuilds state from a `.trace.jsonl` file as it is read, one event at a time.
pub fn reconstruct_file(path: &std::path::Path) -> crate::error::Result<Vec<Value>> {
    let mut reader = crate::audit::trace_reader::TraceReader::open(path, false)?;
    let mut r = Reconstructor::default();
    while let Some(e) = reader.next_event()? {
        r.push(&e);
    }
    Ok(r.finish())
}

/// State reconstruction fed one event at a time.
#[derive(Default)]
pub struct Reconstructor {
    order: Vec<String>,
    states: BTreeMap<String, State>,
}

impl Reconstructor {
    pub fn push(&mut self, e: &Recorded) {
        if let Some(s) = self.states.get_mut(e.session_id.as_str()) {
            s.apply(e);
            return;
        }
        self.order.push(e.session_id.clone());
        let mut s = State::new(e);
        s.apply(e);
        self.states.insert(e.session_id.clone(), s);
    }

    /// Every session's state, in order of first appearance.
    pub fn finish(mut self) -> Vec<Value> {
        self.order
            .into_iter()
            .filter_map(|id| self.states.remove(&id))
            .map(State::into_value)
            .collect()
    }
}

struct State {
    session: Map<String, Value>,
    resolutions: Vec<Value>,
    executions: Vec<Value>,
    approvals: Vec<Value>,
    /// Execute span -> (action, resolution) of its request.
    requested: BTreeMap<String, (String, String)>,
    per_action: BTreeMap<String, (u64, u64)>,
    event_count: u64,
}

impl State {
    fn new(e: &Recorded) -> State {
        let mut session = Map::new();
        session.insert("session_id".into(), json!(e.session_id));
        session.insert("trace_id".into(), json!(e.trace_id));
        session.insert("status".into(), json!("active"));
        State {
            session,
            resolutions: Vec::new(),
            executions: Vec::new(),
            approvals: Vec::new(),
            requested: BTreeMap::new(),
            per_action: BTreeMap::new(),
            event_count: 0,
        }
    }

    fn apply(&mut self, e: &Recorded) {
        self.event_count += 1;
        let p = &e.payload;
        match e.event_type.as_str() {
            "session.started" => {
                for k in ["agent_id", "goal", "parent_session_id"] {
                    if let Some(v) = p.get(k) {
                        self.session.insert(k.into(), v.clone());
                    }
                }
                self.session.insert("started_at".into(), json!(e.timestamp));
            }
            "session.ended" => {
                self.session.insert("status".into(), json!("ended"));
                self.session.insert("ended_at".into(), json!(e.timestamp));
                self.session.insert(
                    "end_reason".into(),
                    p.get("reason").cloned().unwrap_or(Value::Null),
                );
            }
            "carp.resolution.completed" => {
                let mut r = p.clone();
                if let Some(m) = r.as_object_mut() {
                    m.insert("at".into(), json!(e.timestamp));
                }
                self.resolutions.push(r);
            }
            "action.requested" => {
                let get = |k: &str| {
                    p.get(k)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                self.requested
                    .insert(e.span_id.clone(), (get("action_id"), get("resolution_id")));
            }
            "action.failed"
                if p.get("error_code").and_then(Value::as_str) == Some("NO_EXECUTOR") =>
            {
                let action = p
                    .get("action_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                self.executions.push(json!({
                    "execution_id": p.get("execution_id"), "action_id": action, "status": "error",
                    "error_code": "NO_EXECUTOR", "counted": false, "at": e.timestamp,
                }));
            }
            "action.executed" | "action.failed" => {
                let action = p
                    .get("action_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let ok = e.event_type == "action.executed";
                let slot = self.per_action.entry(action.clone()).or_default();
                if ok {
                    slot.0 += 1;
                } else {
                    slot.1 += 1;
                }
                self.executions.push(json!({
                    "execution_id": p.get("execution_id"),
                    "action_id": action,
                    "status": if ok { "success" } else { "error" },
                    "duration_ms": p.get("duration_ms"),
                    "error_code": p.get("error_code"),
                    "at": e.timestamp,
                }));
            }
            "action.denied" | "policy.evaluated" if self.requested.contains_key(&e.span_id) => {
                let (action, resolution) = self.requested[&e.span_id].clone();
                let status = if e.event_type == "action.denied" {
                    "denied"
                } else {
                    "pending_approval"
                };
                self.executions.push(json!({
                    "action_id": action, "resolution_id": resolution, "status": status,
                    "policy_id": p.get("policy_id"), "reason": p.get("reason"), "at": e.timestamp,
                }));
            }
            "action.approved" | "action.denied" if p.get("approver").is_some() => {
                let mut a = p.clone();
                if let Some(m) = a.as_object_mut() {
                    m.insert("granted".into(), json!(e.event_type == "action.approved"));
                    m.insert("at".into(), json!(e.timestamp));
                }
                self.approvals.push(a);
            }
            _ => {}
        }
    }

    fn into_value(self) -> Value {
        let counters: Map<String, Value> = self
            .per_action
            .into_iter()
            .map(|(k, (ok, failed))| {
                (
                    k,
                    json!({"succeeded": ok, "failed": failed, "counted": ok + failed}),
                )
            })
            .collect();
        json!({
            "session": Value::Object(self.session),
            "event_count": self.event_count,
            "resolutions": self.resolutions,
            "executions": self.executions,
            "approvals": self.approvals,
            "execution_counts": counters,
        })
    }
}
