//! Rate-limit windows and budgets: counters over executions, keyed by the
//! policy and its scope (session, agent or global).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use uuid::Uuid;

use crate::policy::{Limit, Policy, Scope};
use crate::time::Micros;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ScopeKey {
    Session(Uuid),
    Agent(Arc<str>),
    Global,
}

impl ScopeKey {
    pub fn of(scope: Scope, session: Uuid, agent: &str) -> ScopeKey {
        match scope {
            Scope::Session => ScopeKey::Session(session),
            Scope::Agent => ScopeKey::Agent(Arc::from(agent)),
            Scope::Global => ScopeKey::Global,
        }
    }
}

#[derive(Debug, Default)]
struct Counter {
    /// Execution times inside the current window, oldest first.
    calls: VecDeque<Micros>,
    spent: f64,
}

/// Where a request stands against one limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Standing {
    Ok,
    /// The window is full; room again after this many microseconds.
    RateExceeded {
        retry_after: Micros,
    },
    BudgetExceeded {
        spent: f64,
        limit: f64,
    },
}

#[derive(Default)]
pub struct Limits {
    counters: Mutex<HashMap<(Arc<str>, ScopeKey), Counter>>,
}

impl Limits {
    pub fn new() -> Self {
        Limits::default()
    }

    /// Can one more execution of `action_id` happen under `policy` now?
    pub fn standing(
        &self,
        policy: &Policy,
        key: &ScopeKey,
        action_id: &str,
        now: Micros,
    ) -> Standing {
        let mut counters = self.counters.lock();
        let Some(c) = counters.get_mut(&(Arc::clone(&policy.key), key.clone())) else {
            return match &policy.limit {
                Limit::Budget { limit, .. } if policy.cost_of(action_id) > *limit => {
                    Standing::BudgetExceeded {
                        spent: 0.0,
                        limit: *limit,
                    }
                }
                _ => Standing::Ok,
            };
        };
        match &policy.limit {
            Limit::Rate {
                max_calls,
                window_micros,
                ..
            } => {
                while c.calls.front().is_some_and(|&t| t <= now - window_micros) {
                    c.calls.pop_front();
                }
                if c.calls.len() as u64 >= *max_calls {
                    let oldest = c.calls.front().copied().unwrap_or(now);
                    Standing::RateExceeded {
                        retry_after: (oldest + window_micros - now).max(0),
                    }
                } else {
                    Standing::Ok
                }
            }
            Limit::Budget { limit, .. } => {
                if c.spent + policy.cost_of(action_id) > *limit {
                    Standing::BudgetExceeded {
                        spent: c.spent,
                        limit: *limit,
                    }
                } else {
                    Standing::Ok
                }
            }
            Limit::None => Standing::Ok,
        }
    }

    /// Counts one execution of `action_id` against `policy`.
    pub fn count(&self, policy: &Policy, key: &ScopeKey, action_id: &str, now: Micros) {
        let mut counters = self.counters.lock();
        let c = counters
            .entry((Arc::clone(&policy.key), key.clone()))
            .or_default();
        match &policy.limit {
            Limit::Rate { .. } => c.calls.push_back(now),
            Limit::Budget { .. } => c.spent += policy.cost_of(action_id),
            Limit::None => {}
        }
    }

    /// Forgets every counter (used when rebuilding state from a trace).
    pub fn clear(&self) {
        self.counters.lock().clear();
    }
}
