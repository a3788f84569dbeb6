//! The TRACE events of an execution, rendered on the flush thread.

use std::sync::Arc;

use crate::atlas::model::TraceMode;
use crate::carp::execute::{ExecEcho, Happened};
use crate::carp::redact::{recorded, RedactionKey};
use crate::trace::chain::EventSource;
use crate::trace::event::EventType;
use crate::trace::hash::to_hex;
use crate::trace::payload::{str_list, Payload};

pub struct ExecuteTrace {
    pub echo: ExecEcho,
    /// Formatted here, on the flush thread.
    pub execution_id: uuid::Uuid,
    pub happened: Happened,
    /// The runtime's key for the markers of `redact` pointers.
    pub key: Arc<RedactionKey>,
}

impl ExecuteTrace {
    fn action_payload(&self) -> Payload {
        let mut p = Payload::new();
        p.str("action_id", &self.echo.action_id);
        p
    }
}

impl EventSource for ExecuteTrace {
    fn count(&self) -> usize {
        2 + match &self.happened {
            Happened::Replayed => 0,
            Happened::Denied { violation, .. } => 1 + violation.is_some() as usize,
            Happened::Pending { .. } => 1,
            Happened::Ran { .. } => 2,
        }
    }

    fn render(&self, emit: &mut dyn FnMut(EventType, Box<str>)) {
        let e = &self.echo;
        let resolution_id = e.resolution_id.to_string();
        let mut p = Payload::new();
        p.str("action_id", &e.action_id)
            .raw("atlas_ids", &str_list(&e.atlas_ids));
        if let Some(h) = &e.context_hints {
            p.raw("context_hints", &str_list(h));
        }
        p.str("goal", &e.goal).str("operation", "execute");
        p.str("request_id", &e.request_id.to_string());
        if let Some(c) = &e.required_capabilities {
            p.raw("required_capabilities", &str_list(c));
        }
        p.str("resolution_id", &resolution_id);
        if let Some(t) = e.risk_tier {
            p.str("risk_tier", t.as_str());
        }
        emit("carp.request.received".into(), p.finish());
        let mut p = self.action_payload();
        // `parameters`: an extension, only when the atlas asks for it
        // (`trace_parameters`), already redacted as it says.
        if let Some(t) = &e.trace {
            let params = e.parameters_hash.parameters();
            if let Some(text) = recorded(params, t.parameters, t, &self.key) {
                p.raw("parameters", &text);
            }
        }
        p.str("parameters_hash", e.parameters_hash.or_empty())
            .str("resolution_id", &resolution_id);
        emit("action.requested".into(), p.finish());
        match &self.happened {
            Happened::Replayed => {}
            Happened::Denied {
                policy_id,
                reason,
                violation,
            } => {
                let mut p = self.action_payload();
                p.str("policy_id", policy_id).str("reason", reason);
                emit("action.denied".into(), p.finish());
                if let Some((kind, details)) = violation {
                    let details = crate::json::canonical::to_canonical(details)
                        .unwrap_or_else(|_| "{}".into());
                    let mut p = self.action_payload();
                    p.raw("details", &details)
                        .str("policy_id", policy_id)
                        .str("violation_type", kind);
                    emit("policy.violated".into(), p.finish());
                }
            }
            Happened::Pending { policy_id } => {
                let mut p = self.action_payload();
                p.str("policy_id", policy_id)
                    .str("result", "requires_approval");
                emit("policy.evaluated".into(), p.finish());
            }
            Happened::Ran {
                duration_ms,
                result,
                algorithm,
                failure,
            } => {
                let mut p = self.action_payload();
                p.str("resolution_id", &resolution_id);
                emit("action.approved".into(), p.finish());
                let mut p = self.action_payload();
                match failure {
                    Some((code, message)) => {
                        p.str("error_code", code).str("error_message", message).str(
                            "execution_id",
                            self.execution_id.hyphenated().encode_lower(&mut [0; 36]),
                        );
                        emit("action.failed".into(), p.finish());
                    }
                    None => {
                        let mut text = Vec::new();
                        let _ = crate::json::canonical::write_f64(&mut text, *duration_ms, "");
                        p.raw("duration_ms", std::str::from_utf8(&text).unwrap_or("0.0"));
                        p.str(
                            "execution_id",
                            self.execution_id.hyphenated().encode_lower(&mut [0; 36]),
                        );
                        if let Some(r) = result {
                            // `result`: the same extension (`trace_result`).
                            let shown = e
                                .trace
                                .as_ref()
                                .filter(|t| t.result != TraceMode::Hash)
                                .and_then(|t| {
                                    let v = serde_json::from_str(r).ok()?;
                                    recorded(&v, t.result, t, &self.key)
                                });
                            if let Some(text) = shown {
                                p.raw("result", &text);
                            }
                            p.str("result_hash", &to_hex(&algorithm.digest(r.as_bytes())));
                        }
                        emit("action.executed".into(), p.finish());
                    }
                }
            }
        }
    }
}
