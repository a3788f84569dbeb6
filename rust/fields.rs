//! Reading fields of a JSON document while collecting every fault with its
//! JSON pointer (used by the atlas and request validators).

use serde_json::{Map, Value};

use crate::canonical::push_key;
use crate::error::Fault;

#[derive(Default)]
pub struct Faults(pub Vec<Fault>);

/// `base` extended by `key` as a JSON pointer.
pub fn at(base: &str, key: &str) -> String {
    let mut p = base.to_string();
    push_key(&mut p, key);
    p
}

pub fn at_index(base: &str, i: usize) -> String {
    format!("{base}/{i}")
}

pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Faults {
    pub fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Fault::new(path, message));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The object at `path`, or a fault.
    pub fn object<'v>(&mut self, v: &'v Value, path: &str) -> Option<&'v Map<String, Value>> {
        match v {
            Value::Object(m) => Some(m),
            other => {
                self.add(path, format!("must be an object, not {}", type_name(other)));
                None
            }
        }
    }

    /// A required string field.
    pub fn req_str<'v>(
        &mut self,
        m: &'v Map<String, Value>,
        key: &str,
        base: &str,
    ) -> Option<&'v str> {
        match m.get(key) {
            None => {
                self.add(at(base, key), "is required");
                None
            }
            Some(v) => self.str_at(v, || at(base, key)),
        }
    }

    /// A string, or a fault at the path `path()` builds (only then).
    fn str_at<'v>(&mut self, v: &'v Value, path: impl FnOnce() -> String) -> Option<&'v str> {
        match v {
            Value::String(s) => Some(s),
            other => {
                self.add(
                    path(),
                    format!("must be a string, not {}", type_name(other)),
                );
                None
            }
        }
    }

    /// An optional string field.
    pub fn opt_str<'v>(
        &mut self,
        m: &'v Map<String, Value>,
        key: &str,
        base: &str,
    ) -> Option<&'v str> {
        match m.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => self.str_at(v, || at(base, key)),
        }
    }

    pub fn as_str<'v>(&mut self, v: &'v Value, path: &str) -> Option<&'v str> {
        match v {
            Value::String(s) => Some(s),
            other => {
                self.add(path, format!("must be a string, not {}", type_name(other)));
                None
            }
        }
    }

    /// A string whose length in characters is within `min..=max`.
    pub fn check_len(&mut self, s: &str, path: &str, min: usize, max: usize) -> bool {
        let n = s.chars().count();
        if n < min || n > max {
            self.add(
                path,
                format!("must be {min} to {max} characters long (got {n})"),
            );
            return false;
        }
        true
    }

    pub fn opt_bool(&mut self, m: &Map<String, Value>, key: &str, base: &str) -> Option<bool> {
        match m.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => {
                self.add(
                    at(base, key),
                    format!("must be true or false, not {}", type_name(other)),
                );
                None
            }
        }
    }

    /// An optional integer within `min..=max`.
    pub fn opt_int(
        &mut self,
        m: &Map<String, Value>,
        key: &str,
        base: &str,
        min: i64,
        max: i64,
    ) -> Option<i64> {
        let v = m.get(key)?;
        if v.is_null() {
            return None;
        }
        match v.as_i64() {
            Some(n) if n >= min && n <= max => Some(n),
            _ => {
                self.add(
                    at(base, key),
                    format!("must be a whole number from {min} to {max}"),
                );
                None
            }
        }
    }

    /// An optional number (integer or float) that is finite and >= `min`.
    pub fn opt_number(
        &mut self,
        m: &Map<String, Value>,
        key: &str,
        base: &str,
        min: f64,
    ) -> Option<f64> {
        let v = m.get(key)?;
        match v.as_f64() {
            Some(n) if n.is_finite() && n >= min => Some(n),
            _ => {
                self.add(at(base, key), format!("must be a number >= {min}"));
                None
            }
        }
    }

    /// An optional array of strings.
    pub fn opt_str_list<'v>(
        &mut self,
        m: &'v Map<String, Value>,
        key: &str,
        base: &str,
    ) -> Option<Vec<&'v str>> {
        match m.get(key)? {
            Value::Null => None,
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    if let Some(s) = self.str_at(item, || at_index(&at(base, key), i)) {
                        out.push(s);
                    }
                }
                Some(out)
            }
            other => {
                self.add(
                    at(base, key),
                    format!("must be an array of strings, not {}", type_name(other)),
                );
                None
            }
        }
    }

    /// Faults for keys not in `allowed`.
    pub fn no_other_keys(&mut self, m: &Map<String, Value>, allowed: &[&str], base: &str) {
        for key in m.keys() {
            if !allowed.contains(&key.as_str()) {
                self.add(
                    at(base, key),
                    format!("unknown key {key:?} (allowed: {})", allowed.join(", ")),
                );
            }
        }
    }
}
