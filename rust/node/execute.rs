//! Execute split around the executor (CARP §5): `executeBegin` runs the
//! checks and answers now, or hands back a `NativeTicket`; `index.js`
//! calls the JS executor (awaiting it on the event loop when it returns
//! a promise) and reports the outcome on the ticket, which records it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use napi::bindgen_prelude::Either;
use napi_derive::napi;
use serde_json::json;

use crate::carp::execute::RunResult;
use crate::json::canonical::text::text_to_canonical;
use crate::runtime::execute_answer::{Begin, Ticket};
use crate::runtime::state::{Direct, Runtime as CoreRuntime};

use super::carp::parse;
use super::errors::IntoJsResult;
use super::runtime::{durable, NativeRuntime};

/// A checked execution whose executor the JS side runs.
#[napi]
pub struct NativeTicket {
    rt: Arc<CoreRuntime>,
    ticket: Mutex<Option<Ticket>>,
    started: Instant,
    action_id: String,
    executor: Option<String>,
    parameters: String,
}

#[napi]
impl NativeRuntime {
    /// The checks of an execute request (JSON text): the answer as JSON
    /// text when nothing is to run, else a ticket.
    #[napi(ts_return_type = "string | NativeTicket")]
    pub fn execute_begin(&self, request: String) -> napi::Result<Either<String, NativeTicket>> {
        let begun = durable(&self.rt, || {
            let v = parse(&request, "INVALID_REQUEST")?;
            self.rt.execute_begin(&v, &Direct).js()
        })?;
        Ok(match begun {
            Begin::Answer(resp) => Either::A(resp.to_value().to_string()),
            Begin::Run(t) => Either::B(NativeTicket {
                rt: Arc::clone(&self.rt),
                action_id: t.echo.action_id.to_string(),
                executor: t.executor.as_deref().map(str::to_owned),
                parameters: t.parameters.to_string(),
                ticket: Mutex::new(Some(*t)),
                started: Instant::now(),
            }),
        })
    }
}

impl NativeTicket {
    fn finish_with(&self, outcome: RunResult) -> napi::Result<String> {
        let t = self
            .ticket
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or_else(|| {
                napi::Error::from_reason("this execution's outcome is recorded already")
            })?;
        let ms = self.started.elapsed().as_secs_f64() * 1000.0;
        let resp = durable(&self.rt, || {
            self.rt.execute_finish(t, outcome, ms, &Direct).js()
        })?;
        Ok(resp.to_value().to_string())
    }
}

#[napi]
impl NativeTicket {
    #[napi(getter)]
    pub fn action_id(&self) -> String {
        self.action_id.clone()
    }

    /// The atlas's executor name for the action, if it names one.
    #[napi(getter)]
    pub fn executor(&self) -> Option<String> {
        self.executor.clone()
    }

    /// The checked parameters as JSON text.
    #[napi(getter)]
    pub fn parameters(&self) -> String {
        self.parameters.clone()
    }

    /// Records what the executor returned (JSON text); the answer as JSON text.
    #[napi]
    pub fn finish(&self, result: Option<String>) -> napi::Result<String> {
        let outcome = match result.as_deref().map(text_to_canonical) {
            None => RunResult::Returned("null".into()),
            Some(Ok(text)) => RunResult::Returned(text.into()),
            Some(Err(e)) => RunResult::Failed {
                code: "INVALID_RESULT",
                message: format!("the executor's result is not JSON: {}", e.message()),
                details: json!({"path": e.path()}),
            },
        };
        self.finish_with(outcome)
    }

    /// Records that the executor threw (`message`, or the error's class
    /// name when empty); the answer as JSON text.
    #[napi]
    pub fn fail(&self, name: String, message: String) -> napi::Result<String> {
        self.finish_with(RunResult::Failed {
            code: "EXECUTION_FAILED",
            message: if message.is_empty() {
                name.clone()
            } else {
                message
            },
            details: json!({ "exception": name }),
        })
    }

    /// Records that no executor is registered for the action; the answer.
    #[napi]
    pub fn no_executor(&self) -> napi::Result<String> {
        self.finish_with(RunResult::NoExecutor)
    }
}

impl Drop for NativeTicket {
    /// A ticket nobody finished is recorded as a failed execution, so the
    /// trace never has a started execution without an outcome.
    fn drop(&mut self) {
        let t = self
            .ticket
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(t) = t {
            let outcome = RunResult::abandoned();
            let ms = self.started.elapsed().as_secs_f64() * 1000.0;
            let _ = self.rt.execute_finish(t, outcome, ms, &Direct);
        }
    }
}
