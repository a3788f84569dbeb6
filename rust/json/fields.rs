//! Reading fields of a JSON document while collecting every fault with its
//! JSON pointer (used by the atlas and request validators), and the faults
//! of a JSON Schema check in the same form.

use serde_json::{Map, Value};

use crate::error::Fault;
use crate::json::canonical::push_key;
use crate::json::view::{Kind, Node, Obj};

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
    v.kind().described()
}

/// Every schema violation of `value`, each with its JSON pointer.
pub fn schema_faults(validator: &jsonschema::Validator, value: &Value, base: &str) -> Vec<Fault> {
    validator
        .iter_errors(value)
        .map(|e| Fault::new(format!("{base}{}", e.instance_path()), e.to_string()))
        .collect()
}

impl Faults {
    pub fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Fault::new(path, message));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The object at `path`, or a fault.
    pub fn object<N: Node>(&mut self, v: N, path: &str) -> Option<N::Obj> {
        let m = v.object();
        if m.is_none() {
            self.not_an_object(&v, path);
        }
        m
    }

    /// Whether `v` is an object (a fault if not), for a subtree that is
    /// taken whole rather than read key by key.
    pub fn is_object<N: Node>(&mut self, v: &N, path: &str) -> bool {
        let yes = v.kind() == Kind::Object;
        if !yes {
            self.not_an_object(v, path);
        }
        yes
    }

    fn not_an_object<N: Node>(&mut self, v: &N, path: &str) {
        self.add(
            path,
            format!("must be an object, not {}", v.kind().described()),
        );
    }

    /// A required string field.
    pub fn req_str<O: Obj>(
        &mut self,
        m: O,
        key: &str,
        base: &str,
    ) -> Option<<O::Node as Node>::Str> {
        match m.get(key) {
            None => {
                self.add(at(base, key), "is required");
                None
            }
            Some(v) => self.str_at(&v, || at(base, key)),
        }
    }

    /// A string, or a fault at the path `path()` builds (only then).
    fn str_at<N: Node>(&mut self, v: &N, path: impl FnOnce() -> String) -> Option<N::Str> {
        let s = v.string();
        if s.is_none() {
            self.add(
                path(),
                format!("must be a string, not {}", v.kind().described()),
            );
        }
        s
    }

    /// An optional string field.
    pub fn opt_str<O: Obj>(
        &mut self,
        m: O,
        key: &str,
        base: &str,
    ) -> Option<<O::Node as Node>::Str> {
        match m.get(key) {
            None => None,
            Some(v) if v.is_null() => None,
            Some(v) => self.str_at(&v, || at(base, key)),
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
        // A character is 1 to 4 bytes: lengths that settle it need no count.
        if s.len() <= max && s.len().div_ceil(4) >= min {
            return true;
        }
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
    pub fn opt_str_list<O: Obj>(
        &mut self,
        m: O,
        key: &str,
        base: &str,
    ) -> Option<Vec<<O::Node as Node>::Str>> {
        let v = m.get(key)?;
        if v.is_null() {
            return None;
        }
        let Some(items) = v.items() else {
            self.add(
                at(base, key),
                format!("must be an array of strings, not {}", v.kind().described()),
            );
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if let Some(s) = self.str_at(item, || at_index(&at(base, key), i)) {
                out.push(s);
            }
        }
        Some(out)
    }

    /// Faults for keys not in `allowed`.
    pub fn no_other_keys<O: Obj>(&mut self, m: O, allowed: &[&str], base: &str) {
        m.other_keys(allowed, |key| {
            self.add(
                at(base, key),
                format!("unknown key {key:?} (allowed: {})", allowed.join(", ")),
            );
        });
    }
}

#[cfg(test)]
mod tests {
    use super::Faults;

    fn fits(s: &str, min: usize, max: usize) -> bool {
        let mut f = Faults::default();
        let ok = f.check_len(s, "/s", min, max);
        assert_eq!(ok, f.is_empty());
        ok
    }

    #[test]
    fn lengths_are_counted_in_characters_at_every_boundary() {
        assert!(!fits("", 1, 5));
        assert!(fits("", 0, 5));
        assert!(fits("abcde", 1, 5));
        assert!(!fits("abcdef", 1, 5));
        // Multi-byte text longer than `max` in bytes but not in characters.
        assert!(fits(&"é".repeat(5), 1, 5));
        assert!(!fits(&"é".repeat(6), 1, 5));
        assert!(fits(&"😀".repeat(5), 1, 5));
        // Few characters that take many bytes, against a minimum.
        assert!(!fits("😀", 2, 5));
        assert!(fits("😀😀", 2, 5));
        assert!(!fits("ab", 3, 5));
    }
}
