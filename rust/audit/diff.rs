//! Comparing two traces, ignoring ids, timestamps and hashes: what changed,
//! where (a JSON pointer into the event list), and whether it matters.

use std::borrow::Borrow;
use std::convert::Infallible;

use serde_json::Value;

use crate::audit::trace_reader::Recorded;
use crate::json::canonical::push_key;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    ValueChanged,
    Added,
    Removed,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::ValueChanged => "value_changed",
            Change::Added => "added",
            Change::Removed => "removed",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    pub path: String,
    pub change: Change,
    /// Durations and timings are minor; decisions, actions, policies and counts major.
    pub major: bool,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compatibility {
    Identical,
    SemanticallyEquivalent,
    Divergent,
}

impl Compatibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Compatibility::Identical => "identical",
            Compatibility::SemanticallyEquivalent => "semantically_equivalent",
            Compatibility::Divergent => "divergent",
        }
    }
}

#[derive(Debug, Clone)]
pub struct TraceDiff {
    pub compatibility: Compatibility,
    pub differences: Vec<Difference>,
}

/// A payload key whose value is a measurement of time, not a decision.
fn is_timing(key: &str) -> bool {
    key.ends_with("_ms")
        || key.ends_with("_us")
        || matches!(key, "duration" | "retry_after" | "elapsed")
}

/// A payload value that is an id the runtime minted (different every run).
fn is_minted_id(key: &str, v: &Value) -> bool {
    key.ends_with("_id") && v.as_str().is_some_and(|s| uuid::Uuid::try_parse(s).is_ok())
}

struct Differ {
    out: Vec<Difference>,
}

impl Differ {
    /// Compares the `i`-th event of each trace (either may have ended).
    fn event(&mut self, i: usize, a: Option<&Recorded>, b: Option<&Recorded>) {
        let base = format!("/{i}");
        match (a, b) {
            (Some(x), Some(y)) => {
                if x.event_type != y.event_type {
                    let (ta, tb) = (
                        Value::from(x.event_type.clone()),
                        Value::from(y.event_type.clone()),
                    );
                    self.push(
                        &format!("{base}/event_type"),
                        Change::ValueChanged,
                        "event_type",
                        Some(&ta),
                        Some(&tb),
                    );
                }
                let mut path = format!("{base}/payload");
                self.value(&mut path, "payload", &x.payload, &y.payload);
            }
            (Some(x), None) => self.push(&base, Change::Removed, "event", Some(&x.raw), None),
            (None, Some(y)) => self.push(&base, Change::Added, "event", None, Some(&y.raw)),
            (None, None) => {}
        }
    }

    fn push(
        &mut self,
        path: &str,
        change: Change,
        key: &str,
        before: Option<&Value>,
        after: Option<&Value>,
    ) {
        self.out.push(Difference {
            path: path.to_string(),
            change,
            major: !is_timing(key),
            before: before.cloned(),
            after: after.cloned(),
        });
    }

    fn value(&mut self, path: &mut String, key: &str, a: &Value, b: &Value) {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                for (k, va) in x {
                    let len = path.len();
                    push_key(path, k);
                    match y.get(k) {
                        Some(vb) if is_minted_id(k, va) && is_minted_id(k, vb) => {}
                        Some(vb) => self.value(path, k, va, vb),
                        None => self.push(path, Change::Removed, k, Some(va), None),
                    }
                    path.truncate(len);
                }
                for (k, vb) in y {
                    if !x.contains_key(k) {
                        let len = path.len();
                        push_key(path, k);
                        self.push(path, Change::Added, k, None, Some(vb));
                        path.truncate(len);
                    }
                }
            }
            (Value::Array(x), Value::Array(y)) => {
                for i in 0..x.len().max(y.len()) {
                    let len = path.len();
                    path.push('/');
                    path.push_str(&i.to_string());
                    match (x.get(i), y.get(i)) {
                        (Some(va), Some(vb)) => self.value(path, key, va, vb),
                        (Some(va), None) => self.push(path, Change::Removed, key, Some(va), None),
                        (None, Some(vb)) => self.push(path, Change::Added, key, None, Some(vb)),
                        (None, None) => {}
                    }
                    path.truncate(len);
                }
            }
            _ if numbers_equal(a, b) || a == b => {}
            _ => self.push(path, Change::ValueChanged, key, Some(a), Some(b)),
        }
    }
}

fn numbers_equal(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => a.is_number() && b.is_number() && x == y && a.is_f64() == b.is_f64(),
        _ => false,
    }
}

/// Compares two traces event by event (in the order given).
pub fn diff(a: &[Recorded], b: &[Recorded]) -> TraceDiff {
    let ok = Ok::<&Recorded, Infallible>;
    match diff_streams(a.iter().map(ok), b.iter().map(ok)) {
        Ok(d) => d,
        Err(never) => match never {},
    }
}

/// Compares two traces read in step, one event of each at a time (e.g. two
/// files streamed by `TraceReader`): memory holds the differences, not the events.
pub fn diff_streams<A, B, E>(
    a: impl IntoIterator<Item = Result<A, E>>,
    b: impl IntoIterator<Item = Result<B, E>>,
) -> Result<TraceDiff, E>
where
    A: Borrow<Recorded>,
    B: Borrow<Recorded>,
{
    let mut d = Differ { out: Vec::new() };
    let (mut a, mut b) = (a.into_iter(), b.into_iter());
    for i in 0.. {
        let x = a.next().transpose()?;
        let y = b.next().transpose()?;
        if x.is_none() && y.is_none() {
            break;
        }
        d.event(
            i,
            x.as_ref().map(Borrow::borrow),
            y.as_ref().map(Borrow::borrow),
        );
    }
    let compatibility = if d.out.is_empty() {
        Compatibility::Identical
    } else if d.out.iter().all(|x| !x.major) {
        Compatibility::SemanticallyEquivalent
    } else {
        Compatibility::Divergent
    };
    Ok(TraceDiff {
        compatibility,
        differences: d.out,
    })
}
