//! Replay: re-run every recorded resolve of a trace against atlases, at the
//! clock readings recorded, with rate-limit and budget state rebuilt from
//! the recorded executions, and report what matches.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Value};
use uuid::Uuid;

use crate::decide::applicable;
use crate::limits::{Limits, ScopeKey};
use crate::policy::{Limit, RiskTier, Scope};
use crate::recorded::Recorded;
use crate::registry::Snapshot;
use crate::request::{CarpRequest, Operation};
use crate::resolve::{resolve, ResolveInput};

/// One recorded request and how its replay compares.
#[derive(Debug, Clone)]
pub struct ReplayedRequest {
    pub session_id: String,
    pub request_id: String,
    pub sequence: u64,
    pub matches: bool,
    pub mismatches: Vec<Value>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ReplayReport {
    pub requests: Vec<ReplayedRequest>,
    pub executions_counted: u64,
}

impl ReplayReport {
    pub fn identical(&self) -> bool {
        self.requests.iter().all(|r| r.matches)
    }
}

struct SessionInfo {
    agent_id: String,
    uuid: Uuid,
}

/// The recorded outcome of one resolve span.
struct RecordedResolve<'a> {
    request: &'a Recorded,
    evaluations: Vec<(String, String, String)>,
    completed: Option<&'a Recorded>,
}

fn risk_of(r: &Recorded) -> Option<RiskTier> {
    r.str("risk_tier").and_then(RiskTier::parse)
}

/// Replays `events` (one or more sessions, each in sequence order).
pub fn replay(events: &[Recorded], snapshot: Arc<Snapshot>) -> ReplayReport {
    let limits = Limits::new();
    let mut report = ReplayReport::default();
    let mut sessions: HashMap<&str, SessionInfo> = HashMap::new();
    let mut spans: HashMap<&str, RecordedResolve<'_>> = HashMap::new();
    let mut order: Vec<&str> = Vec::new();
    let mut exec_risk: HashMap<&str, Option<RiskTier>> = HashMap::new();

    for e in events {
        match e.event_type.as_str() {
            "session.started" => {
                let uuid = Uuid::try_parse(&e.session_id).unwrap_or_else(|_| Uuid::nil());
                let agent_id = e.str("agent_id").unwrap_or_default().to_string();
                sessions.insert(&e.session_id, SessionInfo { agent_id, uuid });
            }
            "carp.request.received" if e.str("operation") == Some("resolve") => {
                spans.insert(
                    &e.span_id,
                    RecordedResolve {
                        request: e,
                        evaluations: Vec::new(),
                        completed: None,
                    },
                );
                order.push(&e.span_id);
            }
            "carp.request.received" if e.str("operation") == Some("execute") => {
                exec_risk.insert(&e.span_id, risk_of(e));
            }
            "policy.evaluated" => {
                if let Some(s) = spans.get_mut(e.span_id.as_str()) {
                    let get = |k| e.str(k).unwrap_or_default().to_string();
                    s.evaluations
                        .push((get("action_id"), get("policy_id"), get("result")));
                }
            }
            "carp.resolution.completed" => {
                let span = e.span_id.as_str();
                if let Some(s) = spans.get_mut(span) {
                    s.completed = Some(e);
                }
                if let Some(s) = spans.remove(span) {
                    report
                        .requests
                        .push(replay_one(&s, &sessions, &snapshot, &limits));
                    order.retain(|x| *x != span);
                }
            }
            "action.failed" if e.str("error_code") == Some("NO_EXECUTOR") => {}
            "action.executed" | "action.failed" => {
                let risk = exec_risk.get(e.span_id.as_str()).copied().flatten();
                if let (Some(info), Some(action)) =
                    (sessions.get(e.session_id.as_str()), e.str("action_id"))
                {
                    count_execution(&snapshot, &limits, info, action, risk, e.micros);
                    report.executions_counted += 1;
                }
            }
            _ => {}
        }
    }
    // Resolves whose completion was never recorded (a trace cut short).
    for span in order {
        if let Some(s) = spans.remove(span) {
            report
                .requests
                .push(replay_one(&s, &sessions, &snapshot, &limits));
        }
    }
    report
}

fn count_execution(
    snap: &Snapshot,
    limits: &Limits,
    info: &SessionInfo,
    action: &str,
    risk: Option<RiskTier>,
    at: i64,
) {
    let Some(&(ai, xi)) = snap.compiled.actions.get(action) else {
        return;
    };
    let all = vec![true; snap.atlases.len()];
    let applied = applicable(
        snap,
        &all,
        ai,
        xi,
        risk.unwrap_or(RiskTier::Low),
        &info.agent_id,
    );
    for r in applied.limits {
        let p = snap.policy(r);
        let scope = match &p.limit {
            Limit::Rate { scope, .. } | Limit::Budget { scope, .. } => *scope,
            Limit::None => Scope::Global,
        };
        limits.count(
            p,
            &ScopeKey::of(scope, info.uuid, &info.agent_id),
            action,
            at,
        );
    }
}

fn replay_one(
    s: &RecordedResolve<'_>,
    sessions: &HashMap<&str, SessionInfo>,
    snapshot: &Arc<Snapshot>,
    limits: &Limits,
) -> ReplayedRequest {
    let r = s.request;
    let mut out = ReplayedRequest {
        session_id: r.session_id.clone(),
        request_id: r.str("request_id").unwrap_or_default().to_string(),
        sequence: r.sequence,
        matches: false,
        mismatches: Vec::new(),
        error: None,
    };
    let Some(info) = sessions.get(r.session_id.as_str()) else {
        out.error = Some("the trace has no session.started for this session".into());
        return out;
    };
    let req = CarpRequest {
        request_id: Uuid::try_parse(&out.request_id).unwrap_or_else(|_| Uuid::nil()),
        timestamp: r.micros,
        operation: Operation::Resolve,
        agent_id: info.agent_id.clone(),
        session_id: info.uuid,
        parent_session_id: None,
        goal: r.str("goal").unwrap_or_default().to_string(),
        risk_tier: risk_of(r),
        context_hints: r.strings("context_hints"),
        required_capabilities: r.strings("required_capabilities"),
        atlas_ids: r.strings("atlas_ids"),
        context: None,
        execution: None,
    };
    let input = ResolveInput {
        snapshot: Arc::clone(snapshot),
        limits,
        now: r.micros,
        trace_id: Uuid::nil(),
    };
    let res = match resolve(&input, &req) {
        Ok(res) => res,
        Err(e) => {
            out.error = Some(format!("{}: {e}", e.code()));
            return out;
        }
    };
    let allowed = res.allowed().count() as u64;
    let replayed: Vec<(String, String, String)> = res
        .evaluations
        .iter()
        .map(|e| {
            (
                res.action(e).action_id.to_string(),
                res.policy_id(e).to_string(),
                e.outcome.as_str().to_string(),
            )
        })
        .collect();
    let mut mism = Vec::new();
    let mut check = |field: &str, recorded: Value, now: Value| {
        if recorded != now {
            mism.push(json!({"field": field, "recorded": recorded, "replayed": now}));
        }
    };
    match s.completed {
        Some(c) => {
            let p = &c.payload;
            check(
                "decision_type",
                p["decision_type"].clone(),
                json!(res.decision.as_str()),
            );
            check("allowed_count", p["allowed_count"].clone(), json!(allowed));
            check(
                "denied_count",
                p["denied_count"].clone(),
                json!(res.evaluations.len() as u64 - allowed),
            );
        }
        None => check("decision_type", Value::Null, json!(res.decision.as_str())),
    }
    for i in 0..s.evaluations.len().max(replayed.len()) {
        let as_json = |e: Option<&(String, String, String)>| {
            e.map(|(a, p, r)| json!({"action_id": a, "policy_id": p, "result": r}))
                .unwrap_or(Value::Null)
        };
        check(
            &format!("policy.evaluated/{i}"),
            as_json(s.evaluations.get(i)),
            as_json(replayed.get(i)),
        );
    }
    out.matches = mism.is_empty();
    out.mismatches = mism;
    out
}
