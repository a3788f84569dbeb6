//! CARP/1.0 requests: parsed from JSON and checked against the schema,
//! every fault with its JSON pointer.

use std::sync::Arc;

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::atlas::policy::RiskTier;
use crate::error::{CoreError, Result};
use crate::json::fields::{at, at_index, Faults};
use crate::json::view::{Node, Obj, Text};
use crate::time::{parse_timestamp, Micros};

/// Longest `agent_id` accepted (characters), here and for a new session.
pub const MAX_AGENT_ID: usize = 255;
/// Longest `goal` accepted (characters), here and for a new session.
pub const MAX_GOAL: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Resolve,
    Execute,
    Validate,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Resolve => "resolve",
            Operation::Execute => "execute",
            Operation::Validate => "validate",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Execution {
    pub resolution_id: Uuid,
    pub action_id: String,
    pub parameters: Value,
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CarpRequest {
    pub request_id: Uuid,
    pub timestamp: Micros,
    pub operation: Operation,
    pub agent_id: Arc<str>,
    pub session_id: Uuid,
    pub parent_session_id: Option<Uuid>,
    pub goal: Arc<str>,
    /// `None` when the request did not say (the tier is then `low`).
    pub risk_tier: Option<RiskTier>,
    pub context_hints: Option<Vec<String>>,
    pub required_capabilities: Option<Vec<String>>,
    pub atlas_ids: Option<Vec<String>>,
    pub context: Option<Value>,
    pub execution: Option<Execution>,
}

impl CarpRequest {
    pub fn risk(&self) -> RiskTier {
        self.risk_tier.unwrap_or(RiskTier::Low)
    }
}

static TOP: &[&str] = &[
    "carp_version",
    "request_id",
    "timestamp",
    "operation",
    "requester",
    "task",
    "atlas_ids",
    "context",
    "execution",
];
static REQUESTER: &[&str] = &["agent_id", "session_id", "parent_session_id"];
static TASK: &[&str] = &[
    "goal",
    "risk_tier",
    "context_hints",
    "required_capabilities",
];
static EXECUTION: &[&str] = &[
    "resolution_id",
    "action_id",
    "parameters",
    "idempotency_key",
];

/// Every key name a request can hold, by object. These are statics, so a
/// name handed to `Obj::other_keys` is the very `&str` listed here.
pub static KEY_NAMES: [&[&str]; 4] = [TOP, REQUESTER, TASK, EXECUTION];

fn uuid<O: Obj>(f: &mut Faults, m: O, key: &str, base: &str, required: bool) -> Option<Uuid> {
    let s = if required {
        f.req_str(m, key, base)?
    } else {
        f.opt_str(m, key, base)?
    };
    let id = s.uuid();
    if id.is_none() {
        f.add(at(base, key), format!("{:?} is not a UUID", &*s));
    }
    id
}

fn strings<O: Obj>(f: &mut Faults, m: O, key: &str, base: &str) -> Option<Vec<String>> {
    f.opt_str_list(m, key, base)
        .map(|l| l.iter().map(|s| s.to_string()).collect())
}

/// The session id of a request, if it has a readable one (to know where
/// an `error.occurred` event belongs when the rest is invalid).
pub fn session_hint(v: &Value) -> Option<Uuid> {
    v.get("requester")?
        .get("session_id")?
        .as_str()
        .and_then(|s| Uuid::try_parse(s).ok())
}

/// The request id of a request, if readable (for error bodies).
pub fn request_id_hint(v: &Value) -> Option<String> {
    v.get("request_id")?.as_str().map(str::to_string)
}

pub fn parse_request(v: &Value) -> Result<CarpRequest> {
    parse_request_from(v)
}

/// Parses and checks a request read through any JSON-like view.
pub fn parse_request_from<N: Node>(v: N) -> Result<CarpRequest> {
    let mut f = Faults::default();
    let parsed = parse(v, &mut f);
    match parsed {
        Some(r) if f.is_empty() => Ok(r),
        _ => Err(CoreError::InvalidRequest(f.0)),
    }
}

fn parse<N: Node>(v: N, f: &mut Faults) -> Option<CarpRequest> {
    let m = f.object(v, "")?;
    f.no_other_keys(&m, TOP, "");
    match m.get("carp_version") {
        Some(v) if v.string().is_some_and(|s| &*s == "1.0") => {}
        Some(other) => f.add(
            "/carp_version",
            format!("must be \"1.0\", not {}", shown(&other)),
        ),
        None => f.add("/carp_version", "is required (\"1.0\")"),
    }
    let request_id = uuid(f, &m, "request_id", "", true);
    let timestamp =
        f.req_str(&m, "timestamp", "")
            .and_then(|t| match parse_timestamp(&t, "/timestamp") {
                Ok(t) => Some(t),
                Err(e) => {
                    f.add("/timestamp", e.message());
                    None
                }
            });
    let operation = f.req_str(&m, "operation", "").and_then(|op| match &*op {
        "resolve" => Some(Operation::Resolve),
        "execute" => Some(Operation::Execute),
        "validate" => Some(Operation::Validate),
        other => {
            f.add(
                "/operation",
                format!("{other:?} is not an operation (resolve, execute, validate)"),
            );
            None
        }
    });

    let requester = match m.get("requester") {
        None => {
            f.add("/requester", "is required");
            None
        }
        Some(r) => f.object(r, "/requester"),
    };
    let (mut agent_id, mut session_id, mut parent) = (None, None, None);
    if let Some(r) = &requester {
        f.no_other_keys(r, REQUESTER, "/requester");
        agent_id = f.req_str(r, "agent_id", "/requester");
        if let Some(a) = &agent_id {
            f.check_len(a, "/requester/agent_id", 1, MAX_AGENT_ID);
        }
        session_id = uuid(f, r, "session_id", "/requester", true);
        parent = uuid(f, r, "parent_session_id", "/requester", false);
    }

    let task = match m.get("task") {
        None => {
            f.add("/task", "is required");
            None
        }
        Some(t) => f.object(t, "/task"),
    };
    let (mut goal, mut risk, mut hints, mut caps) = (None, None, None, None);
    if let Some(t) = &task {
        f.no_other_keys(t, TASK, "/task");
        goal = f.req_str(t, "goal", "/task");
        if let Some(g) = &goal {
            f.check_len(g, "/task/goal", 1, MAX_GOAL);
        }
        risk = f.opt_str(t, "risk_tier", "/task").and_then(|r| {
            let tier = RiskTier::parse(&r);
            if tier.is_none() {
                f.add(
                    "/task/risk_tier",
                    format!("{:?} is not a risk tier (low, medium, high, critical)", &*r),
                );
            }
            tier
        });
        hints = strings(f, t, "context_hints", "/task");
        caps = strings(f, t, "required_capabilities", "/task");
    }
    let atlas_ids = strings(f, &m, "atlas_ids", "");
    let context = match m.get("context") {
        None => None,
        Some(c) if c.is_null() => None,
        Some(c) => f
            .is_object(&c, "/context")
            .then(|| json(f, &c, "/context"))
            .flatten(),
    };
    let execution = match m.get("execution") {
        Some(e) if !e.is_null() => f.object(e, "/execution").and_then(|e| execution(&e, f)),
        _ => {
            if operation == Some(Operation::Execute) {
                f.add("/execution", "is required when operation is \"execute\"");
            }
            None
        }
    };
    Some(CarpRequest {
        request_id: request_id?,
        timestamp: timestamp?,
        operation: operation?,
        agent_id: agent_id?.into(),
        session_id: session_id?,
        parent_session_id: parent,
        goal: goal?.into(),
        risk_tier: risk,
        context_hints: hints,
        required_capabilities: caps,
        atlas_ids,
        context,
        execution,
    })
}

/// A value as fault messages quote it: JSON text, or what it is.
fn shown<N: Node>(v: &N) -> String {
    match v.to_json() {
        Some(j) => j.to_string(),
        None => v.kind().described().to_string(),
    }
}

/// A subtree as an owned JSON value, or a fault when it is not JSON.
fn json<N: Node>(f: &mut Faults, v: &N, path: &str) -> Option<Value> {
    let j = v.to_json();
    if j.is_none() {
        f.add(path, "is not JSON");
    }
    j
}

fn execution<O: Obj>(e: &O, f: &mut Faults) -> Option<Execution> {
    f.no_other_keys(e, EXECUTION, "/execution");
    let resolution_id = uuid(f, e, "resolution_id", "/execution", true);
    let action_id = f.req_str(e, "action_id", "/execution");
    let parameters = match e.get("parameters") {
        None => Value::Object(Map::new()),
        Some(p) if p.is_null() => Value::Object(Map::new()),
        Some(p) => {
            f.is_object(&p, "/execution/parameters");
            json(f, &p, "/execution/parameters").unwrap_or(Value::Null)
        }
    };
    let key = f.opt_str(e, "idempotency_key", "/execution");
    if let Some(k) = &key {
        f.check_len(k, "/execution/idempotency_key", 1, 255);
    }
    Some(Execution {
        resolution_id: resolution_id?,
        action_id: action_id?.to_string(),
        parameters,
        idempotency_key: key.map(|k| k.to_string()),
    })
}

/// Faults for the position of a capability id in the request.
pub fn capability_path(i: usize) -> String {
    at_index("/task/required_capabilities", i)
}

impl CarpRequest {
    /// A resolve request for an existing session (its id and agent),
    /// built without JSON.
    #[allow(clippy::too_many_arguments)]
    pub fn for_resolve(
        request_id: Uuid,
        now: Micros,
        session_id: Uuid,
        agent_id: &str,
        goal: &str,
        risk_tier: Option<&str>,
        atlas_ids: Option<Vec<String>>,
        required_capabilities: Option<Vec<String>>,
        context_hints: Option<Vec<String>>,
    ) -> Result<CarpRequest> {
        let mut f = Faults::default();
        f.check_len(goal, "/task/goal", 1, MAX_GOAL);
        let risk = risk_tier.and_then(|r| {
            let t = RiskTier::parse(r);
            if t.is_none() {
                f.add(
                    "/task/risk_tier",
                    format!("{r:?} is not a risk tier (low, medium, high, critical)"),
                );
            }
            t
        });
        if !f.is_empty() {
            return Err(CoreError::InvalidRequest(f.0));
        }
        Ok(CarpRequest {
            request_id,
            timestamp: now,
            operation: Operation::Resolve,
            agent_id: Arc::from(agent_id),
            session_id,
            parent_session_id: None,
            goal: Arc::from(goal),
            risk_tier: risk,
            context_hints,
            required_capabilities,
            atlas_ids,
            context: None,
            execution: None,
        })
    }
}
