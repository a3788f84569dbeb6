//! Rate-limit windows and budgets: counters over executions, keyed by the
//! policy and its scope (session, agent or global).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use uuid::Uuid;

use crate::atlas::policy::{Limit, Policy, Scope};
use crate::error::Result;
use crate::ids::FastMap;
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

impl Counter {
    /// Where one more execution of `action_id` stands (prunes the window).
    fn standing(&mut self, policy: &Policy, action_id: &str, now: Micros) -> Standing {
        match &policy.limit {
            Limit::Rate {
                max_calls,
                window_micros,
                ..
            } => {
                while self
                    .calls
                    .front()
                    .is_some_and(|&t| t <= now - window_micros)
                {
                    self.calls.pop_front();
                }
                if self.calls.len() as u64 >= *max_calls {
                    let oldest = self.calls.front().copied().unwrap_or(now);
                    Standing::RateExceeded {
                        retry_after: (oldest + window_micros - now).max(0),
                    }
                } else {
                    Standing::Ok
                }
            }
            Limit::Budget { limit, .. } if self.spent + policy.cost_of(action_id) > *limit => {
                Standing::BudgetExceeded {
                    spent: self.spent,
                    limit: *limit,
                }
            }
            _ => Standing::Ok,
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

/// What one admitted execution counted, so it can be taken back: local
/// counters, or the counts a shared store took at a time.
#[derive(Debug, Default)]
pub struct Reservation(
    Vec<(Arc<str>, ScopeKey, Micros, f64, bool)>,
    Option<(Vec<Count>, Micros)>,
);

/// One limit as a shared store counts it: the counter's key (policy key
/// and scope) and what it allows.
#[derive(Debug, Clone, PartialEq)]
pub struct Count {
    pub key: String,
    pub kind: CountKind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CountKind {
    Rate { max_calls: u64, window_micros: i64 },
    Budget { limit: f64, cost: f64 },
}

impl Count {
    /// The count of one execution of `action_id` under `policy` (None for
    /// a policy that limits nothing).
    pub fn of(policy: &Policy, key: &ScopeKey, action_id: &str) -> Option<Count> {
        let kind = match &policy.limit {
            Limit::Rate {
                max_calls,
                window_micros,
                ..
            } => CountKind::Rate {
                max_calls: *max_calls,
                window_micros: *window_micros,
            },
            Limit::Budget { limit, .. } => CountKind::Budget {
                limit: *limit,
                cost: policy.cost_of(action_id),
            },
            Limit::None => return None,
        };
        let scope = match key {
            ScopeKey::Session(id) => format!("session:{id}"),
            ScopeKey::Agent(a) => format!("agent:{a}"),
            ScopeKey::Global => "global".to_string(),
        };
        Some(Count {
            key: format!("{}|{scope}", policy.key),
            kind,
        })
    }
}

/// Counters kept by a store several runtimes share (PostgreSQL), so that a
/// limit holds across all of them. Each call is one atomic step there.
pub trait SharedCounters: Send + Sync {
    /// Checks every count and, only if all have room, takes each (a key
    /// listed twice counts once); else the index of the first that
    /// refused and why.
    fn acquire(
        &self,
        counts: &[Count],
        now: Micros,
    ) -> Result<std::result::Result<(), (usize, Standing)>>;
    /// Gives back what `acquire` took at `at`.
    fn release(&self, counts: &[Count], at: Micros) -> Result<()>;
    /// Where one more execution stands against `count`, taking nothing.
    fn standing(&self, count: &Count, now: Micros) -> Result<Standing>;
}

thread_local! {
    /// The shared store's failure during a resolve on this thread, if any
    /// (`Limits::standing` cannot return it through the evaluation).
    static SHARED_FAULT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Takes the shared store's failure seen by `Limits::standing` on this
/// thread since the last call (a resolve that saw one must not answer).
pub fn take_shared_fault() -> Option<String> {
    SHARED_FAULT.with(|f| f.borrow_mut().take())
}

#[derive(Default)]
pub struct Limits {
    counters: Mutex<FastMap<(Arc<str>, ScopeKey), Counter>>,
    shared: OnceLock<Arc<dyn SharedCounters>>,
}

impl Limits {
    pub fn new() -> Self {
        Limits::default()
    }

    /// Counts every limit in `counters` from now on (once; a second call is
    /// refused with false).
    pub fn share(&self, counters: Arc<dyn SharedCounters>) -> bool {
        self.shared.set(counters).is_ok()
    }

    pub fn is_shared(&self) -> bool {
        self.shared.get().is_some()
    }

    /// Can one more execution of `action_id` happen under `policy` now?
    /// With shared counters, a failure to read them is kept for
    /// `take_shared_fault` and the answer is `Ok` (the resolve is refused).
    pub fn standing(
        &self,
        policy: &Policy,
        key: &ScopeKey,
        action_id: &str,
        now: Micros,
    ) -> Standing {
        if let Some(shared) = self.shared.get() {
            let Some(count) = Count::of(policy, key, action_id) else {
                return Standing::Ok;
            };
            return shared.standing(&count, now).unwrap_or_else(|e| {
                SHARED_FAULT.with(|f| *f.borrow_mut() = Some(e.to_string()));
                Standing::Ok
            });
        }
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
        c.standing(policy, action_id, now)
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

    /// Checks every limit and, only if all have room, counts one execution
    /// against each (atomically: concurrent callers never overshoot); a
    /// counter listed twice (the same policy key and scope) counts once.
    /// On refusal returns the index of the limit that refused and why.
    pub fn acquire(
        &self,
        limits: &[(&Policy, ScopeKey)],
        action_id: &str,
        now: Micros,
    ) -> Result<std::result::Result<Reservation, (usize, Standing)>> {
        if let Some(shared) = self.shared.get() {
            let counts: Vec<Count> = limits
                .iter()
                .filter_map(|(p, key)| Count::of(p, key, action_id))
                .collect();
            // The refusing count's index among `limits`.
            let index = |n: usize| {
                limits
                    .iter()
                    .enumerate()
                    .filter(|(_, (p, key))| Count::of(p, key, action_id).is_some())
                    .nth(n)
                    .map_or(0, |(i, _)| i)
            };
            if counts.is_empty() {
                return Ok(Ok(Reservation::default()));
            }
            return Ok(match shared.acquire(&counts, now)? {
                Ok(()) => Ok(Reservation(Vec::new(), Some((counts, now)))),
                Err((n, standing)) => Err((index(n), standing)),
            });
        }
        Ok(self.acquire_here(limits, action_id, now))
    }

    fn acquire_here(
        &self,
        limits: &[(&Policy, ScopeKey)],
        action_id: &str,
        now: Micros,
    ) -> std::result::Result<Reservation, (usize, Standing)> {
        let mut counters = self.counters.lock();
        for (i, (p, key)) in limits.iter().enumerate() {
            let c = counters
                .entry((Arc::clone(&p.key), key.clone()))
                .or_default();
            let standing = c.standing(p, action_id, now);
            if standing != Standing::Ok {
                return Err((i, standing));
            }
        }
        let mut taken: Vec<(Arc<str>, ScopeKey, Micros, f64, bool)> =
            Vec::with_capacity(limits.len());
        for (p, key) in limits {
            // One policy (atlas/policy id) listed twice, e.g. by the
            // snapshot a resolution was issued under and the one loaded
            // now: both versions were checked above; it counts once.
            if taken.iter().any(|t| t.0 == p.key && &t.1 == key) {
                continue;
            }
            let c = counters
                .entry((Arc::clone(&p.key), key.clone()))
                .or_default();
            match &p.limit {
                Limit::Rate { .. } => c.calls.push_back(now),
                Limit::Budget { .. } => c.spent += p.cost_of(action_id),
                Limit::None => continue,
            }
            taken.push((
                Arc::clone(&p.key),
                key.clone(),
                now,
                p.cost_of(action_id),
                matches!(p.limit, Limit::Rate { .. }),
            ));
        }
        Ok(Reservation(taken, None))
    }

    /// Takes back what a reservation counted (the execution did not happen).
    pub fn release(&self, r: Reservation) {
        if let (Some((counts, at)), Some(shared)) = (&r.1, self.shared.get()) {
            // Not given back (the store failed): the count stays taken until
            // its window passes, which errs on the side of the limit.
            let _ = shared.release(counts, *at);
            return;
        }
        let mut counters = self.counters.lock();
        for (policy, key, at, cost, rate) in r.0 {
            if let Some(c) = counters.get_mut(&(policy, key)) {
                if rate {
                    if let Some(i) = c.calls.iter().rposition(|&t| t == at) {
                        c.calls.remove(i);
                    }
                } else {
                    c.spent = (c.spent - cost).max(0.0);
                }
            }
        }
    }

    /// Forgets every counter (used when rebuilding state from a trace).
    pub fn clear(&self) {
        self.counters.lock().clear();
    }
}

/// A sliding-window limiter on its own: at most `max_calls` per window,
/// per key.
pub struct SlidingWindow {
    max_calls: u64,
    window: Micros,
    calls: Mutex<FastMap<String, VecDeque<Micros>>>,
}

impl SlidingWindow {
    pub fn new(max_calls: u64, window: Micros) -> Self {
        SlidingWindow {
            max_calls,
            window: window.max(1),
            calls: Mutex::new(FastMap::default()),
        }
    }

    fn pruned<'a>(
        &self,
        map: &'a mut FastMap<String, VecDeque<Micros>>,
        key: &str,
        now: Micros,
    ) -> &'a mut VecDeque<Micros> {
        let q = map.entry(key.to_string()).or_default();
        while q.front().is_some_and(|&t| t <= now - self.window) {
            q.pop_front();
        }
        q
    }

    /// Takes a slot if there is one: `Ok(())`, or `Err(retry_after)`.
    pub fn acquire(&self, key: &str, now: Micros) -> std::result::Result<(), Micros> {
        let mut map = self.calls.lock();
        let max = self.max_calls;
        let window = self.window;
        let q = self.pruned(&mut map, key, now);
        if q.len() as u64 >= max {
            let oldest = q.front().copied().unwrap_or(now);
            return Err((oldest + window - now).max(0));
        }
        q.push_back(now);
        Ok(())
    }

    pub fn remaining(&self, key: &str, now: Micros) -> u64 {
        let mut map = self.calls.lock();
        let max = self.max_calls;
        max.saturating_sub(self.pruned(&mut map, key, now).len() as u64)
    }

    /// Microseconds until a slot frees up (0 if one is free now).
    pub fn retry_after(&self, key: &str, now: Micros) -> Micros {
        let mut map = self.calls.lock();
        let (max, window) = (self.max_calls, self.window);
        let q = self.pruned(&mut map, key, now);
        if (q.len() as u64) < max {
            0
        } else {
            (q.front().copied().unwrap_or(now) + window - now).max(0)
        }
    }

    pub fn reset(&self, key: Option<&str>) {
        let mut map = self.calls.lock();
        match key {
            Some(k) => {
                map.remove(k);
            }
            None => map.clear(),
        }
    }
}

#[cfg(test)]
#[path = "limits_tests.rs"]
mod tests;

/// The one policy listed by two atlas snapshots (a resolution's and the
/// current one): both versions are checked, the counter counts once.
#[cfg(test)]
mod shared_counter_tests {
    use std::sync::Arc;

    use serde_json::json;
    use uuid::Uuid;

    use super::{Limits, ScopeKey, Standing};
    use crate::atlas::model::Atlas;
    use crate::atlas::policy::Policy;

    fn rate(max_calls: u64) -> Policy {
        let manifest = json!({
            "atlas_version": "1.0", "atlas_id": "org.test.shared", "version": "1.0.0",
            "name": "Shared", "actions": [{"action_id": "api.call", "name": "Call"}],
            "policies": [{
                "policy_id": "rate", "type": "rate_limit", "actions": ["api.call"],
                "parameters": {"max_calls": max_calls, "window_seconds": 60, "scope": "agent"},
            }],
        });
        Atlas::build(Arc::new(manifest), None)
            .unwrap()
            .policies
            .remove(0)
    }

    #[test]
    fn a_policy_in_both_snapshots_counts_once_and_the_stricter_version_decides() {
        let (then, now) = (rate(2), rate(3));
        assert_eq!(then.key, now.key);
        let limits = Limits::new();
        let key = ScopeKey::of(crate::atlas::policy::Scope::Agent, Uuid::nil(), "agent-1");
        let both = [(&then, key.clone()), (&now, key.clone())];
        let t = 1_000_000;
        let r = limits.acquire(&both, "api.call", t).unwrap().unwrap();
        assert_eq!(r.0.len(), 1, "counted once");
        limits.acquire(&both, "api.call", t + 1).unwrap().unwrap();
        // Two calls in the window: the old version (2) refuses, the new (3) would not.
        let (i, standing) = limits
            .acquire(&both, "api.call", t + 2)
            .unwrap()
            .unwrap_err();
        assert_eq!(i, 0);
        assert!(matches!(standing, Standing::RateExceeded { .. }));
        assert_eq!(
            limits.standing(&now, &key, "api.call", t + 2),
            Standing::Ok,
            "the counter holds 2 calls, not 4"
        );
    }
}
