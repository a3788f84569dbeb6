//! Replay: re-run every recorded resolve of a trace against atlases, at the
//! clock readings recorded, with rate-limit and budget state rebuilt from
//! the recorded executions, and report what matches.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Value};
use uuid::Uuid;

use crate::atlas::policy::{Limit, RiskTier, Scope};
use crate::atlas::registry::Snapshot;
use crate::audit::trace_reader::Recorded;
use crate::carp::applicable::applicable;
use crate::carp::limits::{Limits, ScopeKey};
use crate::carp::request::{CarpRequest, Operation};
use crate::carp::resolve::{resolve, ResolveInput};

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

/// What a replay held and counted, to show that its memory does not grow
/// with the trace: events are consumed one at a time, and only the request
/// event of a resolve whose completion has not been read yet is kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Events read.
    pub events: u64,
    /// Resolves replayed (one result each).
    pub requests: u64,
    /// Of which matched.
    pub matched: u64,
    pub executions_counted: u64,
    /// The most recorded events the engine held at once (the one being read
    /// included): open resolve spans, plus any events the caller kept.
    pub peak_events_held: u64,
    /// The most execute spans awaiting their outcome at once.
    pub peak_open_executes: u64,
}

struct SessionInfo {
    agent_id: String,
    uuid: Uuid,
    /// Execute spans of this session awaiting their outcome: span id and the
    /// request's risk tier (what the limits that applied were chosen by).
    open_executes: Vec<(String, Option<RiskTier>)>,
}

/// An execute span whose outcome never came (e.g. an idempotent replay
/// records no outcome) is forgotten once a session has this many open.
const MAX_OPEN_EXECUTES: usize = 64;

/// The recorded outcome of one resolve span, while its events are read.
struct RecordedResolve {
    request: Recorded,
    evaluations: Vec<(String, String, String)>,
    /// `context.injected`: block id and token count, in recorded order.
    blocks: Vec<(String, i64)>,
    /// Order in which the request was read (for resolves never completed).
    opened: u64,
}

fn risk_of(r: &Recorded) -> Option<RiskTier> {
    r.str("risk_tier").and_then(RiskTier::parse)
}

/// Replays `events` (one or more sessions, each in sequence order).
pub fn replay(events: &[Recorded], snapshot: Arc<Snapshot>) -> ReplayReport {
    let mut report = ReplayReport::default();
    let mut replayer = Replayer::new(snapshot, |r| report.requests.push(r));
    for e in events {
        replayer.push(e.clone());
    }
    report.executions_counted = replayer.finish().executions_counted;
    report
}

/// The replay engine, fed one event at a time; each resolve's result is
/// handed to `sink` as soon as its completion is read (resolves never
/// completed, when the trace ends). Memory: the sessions, the limit
/// counters, and the resolves and executes still open.
pub struct Replayer<F: FnMut(ReplayedRequest)> {
    snapshot: Arc<Snapshot>,
    limits: Limits,
    sessions: HashMap<String, SessionInfo>,
    spans: HashMap<String, RecordedResolve>,
    opened: u64,
    open_executes: u64,
    stats: ReplayStats,
    sink: F,
}

impl<F: FnMut(ReplayedRequest)> Replayer<F> {
    pub fn new(snapshot: Arc<Snapshot>, sink: F) -> Self {
        Replayer {
            snapshot,
            limits: Limits::new(),
            sessions: HashMap::new(),
            spans: HashMap::new(),
            opened: 0,
            open_executes: 0,
            stats: ReplayStats::default(),
            sink,
        }
    }

    /// Counts `n` events held by the caller as well (e.g. a whole trace
    /// given as a list), for `ReplayStats::peak_events_held`.
    pub fn note_held(&mut self, n: u64) {
        self.stats.peak_events_held = self.stats.peak_events_held.max(n);
    }

    fn emit(&mut self, r: ReplayedRequest) {
        self.stats.requests += 1;
        self.stats.matched += u64::from(r.matches);
        (self.sink)(r);
    }

    /// Reads the next event of the trace.
    pub fn push(&mut self, e: Recorded) {
        self.stats.events += 1;
        let held = self.spans.len() as u64 + 1;
        self.stats.peak_events_held = self.stats.peak_events_held.max(held);
        match e.event_type.as_str() {
            "session.started" => {
                let uuid = Uuid::try_parse(&e.session_id).unwrap_or_else(|_| Uuid::nil());
                let agent_id = e.str("agent_id").unwrap_or_default().to_string();
                let info = SessionInfo {
                    agent_id,
                    uuid,
                    open_executes: Vec::new(),
                };
                if let Some(old) = self.sessions.insert(e.session_id, info) {
                    self.open_executes -= old.open_executes.len() as u64;
                }
            }
            "session.ended" => {
                if let Some(info) = self.sessions.get_mut(e.session_id.as_str()) {
                    self.open_executes -= info.open_executes.len() as u64;
                    info.open_executes = Vec::new();
                }
            }
            "carp.request.received" if e.str("operation") == Some("resolve") => {
                self.opened += 1;
                let span = e.span_id.clone();
                let open = RecordedResolve {
                    request: e,
                    evaluations: Vec::new(),
                    blocks: Vec::new(),
                    opened: self.opened,
                };
                self.spans.insert(span, open);
            }
            "carp.request.received" if e.str("operation") == Some("execute") => {
                let risk = risk_of(&e);
                if let Some(info) = self.sessions.get_mut(e.session_id.as_str()) {
                    if info.open_executes.len() >= MAX_OPEN_EXECUTES {
                        info.open_executes.remove(0);
                        self.open_executes -= 1;
                    }
                    info.open_executes.push((e.span_id, risk));
                    self.open_executes += 1;
                    self.stats.peak_open_executes =
                        self.stats.peak_open_executes.max(self.open_executes);
                }
            }
            "policy.evaluated" => {
                if let Some(s) = self.spans.get_mut(e.span_id.as_str()) {
                    let get = |k| e.str(k).unwrap_or_default().to_string();
                    s.evaluations
                        .push((get("action_id"), get("policy_id"), get("result")));
                } else {
                    // An execute waiting for approval: its outcome is this.
                    self.close_execute(&e);
                }
            }
            "context.injected" => {
                if let Some(s) = self.spans.get_mut(e.span_id.as_str()) {
                    let id = e.str("block_id").unwrap_or_default().to_string();
                    let tokens = e.payload["token_count"].as_i64().unwrap_or(-1);
                    s.blocks.push((id, tokens));
                }
            }
            "carp.resolution.completed" => {
                if let Some(s) = self.spans.remove(e.span_id.as_str()) {
                    let r = replay_one(&s, Some(&e), &self.sessions, &self.snapshot, &self.limits);
                    self.emit(r);
                }
            }
            "action.denied" => {
                self.close_execute(&e);
            }
            "action.failed" if e.str("error_code") == Some("NO_EXECUTOR") => {
                self.close_execute(&e);
            }
            "action.executed" | "action.failed" => {
                let risk = self.close_execute(&e).flatten();
                if let (Some(info), Some(action)) =
                    (self.sessions.get(e.session_id.as_str()), e.str("action_id"))
                {
                    count_execution(&self.snapshot, &self.limits, info, action, risk, e.micros);
                    self.stats.executions_counted += 1;
                }
            }
            _ => {}
        }
    }

    /// Forgets an execute span that recorded its outcome; its risk tier.
    fn close_execute(&mut self, e: &Recorded) -> Option<Option<RiskTier>> {
        let info = self.sessions.get_mut(e.session_id.as_str())?;
        let i = info
            .open_executes
            .iter()
            .position(|(span, _)| *span == e.span_id)?;
        self.open_executes -= 1;
        Some(info.open_executes.remove(i).1)
    }

    /// Replays the resolves whose completion was never recorded (a trace
    /// cut short), in the order they were read; what was counted.
    pub fn finish(mut self) -> ReplayStats {
        let mut open: Vec<RecordedResolve> =
            std::mem::take(&mut self.spans).into_values().collect();
        open.sort_by_key(|s| s.opened);
        for s in open {
            let r = replay_one(&s, None, &self.sessions, &self.snapshot, &self.limits);
            self.emit(r);
        }
        self.stats
    }
}

/// Replays a `.trace.jsonl` file as it is read (one event in memory at a
/// time besides the open resolves); `progress` gets the bytes read now and then.
pub fn replay_file(
    path: &std::path::Path,
    snapshot: Arc<Snapshot>,
    sink: impl FnMut(ReplayedRequest),
    progress: &mut dyn FnMut(u64),
) -> crate::error::Result<ReplayStats> {
    let mut reader = crate::audit::trace_reader::TraceReader::open(path, false)?;
    let mut replayer = Replayer::new(snapshot, sink);
    while let Some(e) = reader.next_event()? {
        replayer.push(e);
        if reader.events_read() % 65_536 == 0 {
            progress(reader.bytes_read());
        }
    }
    progress(reader.bytes_read());
    Ok(replayer.finish())
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
    s: &RecordedResolve,
    completed: Option<&Recorded>,
    sessions: &HashMap<String, SessionInfo>,
    snapshot: &Arc<Snapshot>,
    limits: &Limits,
) -> ReplayedRequest {
    let r = &s.request;
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
        agent_id: Arc::from(info.agent_id.as_str()),
        session_id: info.uuid,
        parent_session_id: None,
        goal: Arc::from(r.str("goal").unwrap_or_default()),
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
        // A replay weighs what the trace recorded, however many.
        max_candidate_actions: u64::MAX,
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
    match completed {
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
            check(
                "context_block_count",
                p["context_block_count"].clone(),
                json!(res.blocks.len() as u64),
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
    // The context given: the same blocks, in the same order, of the same size.
    let blocks: Vec<(String, i64)> = res
        .blocks
        .iter()
        .map(|b| {
            let (block, _, _) = res.block(b);
            (block.block_id.to_string(), block.token_estimate as i64)
        })
        .collect();
    for i in 0..s.blocks.len().max(blocks.len()) {
        let as_json = |b: Option<&(String, i64)>| {
            b.map(|(id, tokens)| json!({"block_id": id, "token_count": tokens}))
                .unwrap_or(Value::Null)
        };
        check(
            &format!("context.injected/{i}"),
            as_json(s.blocks.get(i)),
            as_json(blocks.get(i)),
        );
    }
    out.matches = mism.is_empty();
    out.mismatches = mism;
    out
}
