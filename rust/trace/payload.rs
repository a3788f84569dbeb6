//! Event payloads written straight as canonical JSON: [`Payload`] for an
//! object whose keys are added in sorted order, [`str_list`] for an array
//! of strings.

use crate::json::canonical::write_str;

/// Builds a canonical payload whose keys are added in sorted order.
pub struct Payload {
    out: Vec<u8>,
}

impl Default for Payload {
    fn default() -> Self {
        Self::new()
    }
}

impl Payload {
    pub fn new() -> Self {
        let mut out = Vec::with_capacity(96);
        out.push(b'{');
        Payload { out }
    }

    fn key(&mut self, key: &str) {
        if self.out.len() > 1 {
            self.out.push(b',');
        }
        write_str(&mut self.out, key);
        self.out.push(b':');
    }

    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        write_str(&mut self.out, value);
        self
    }

    pub fn int(&mut self, key: &str, value: i64) -> &mut Self {
        self.key(key);
        self.out
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        self
    }

    /// Adds a value that is already canonical JSON.
    pub fn raw(&mut self, key: &str, canonical: &str) -> &mut Self {
        self.key(key);
        self.out.extend_from_slice(canonical.as_bytes());
        self
    }

    pub fn finish(&mut self) -> Box<str> {
        self.out.push(b'}');
        let out = std::mem::take(&mut self.out);
        String::from_utf8(out)
            .expect("canonical JSON is ASCII")
            .into_boxed_str()
    }
}

/// A JSON array of strings, canonical.
pub fn str_list(list: &[impl AsRef<str>]) -> String {
    let mut out = Vec::with_capacity(16 * list.len() + 2);
    out.push(b'[');
    for (i, s) in list.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(&mut out, s.as_ref());
    }
    out.push(b']');
    String::from_utf8(out).unwrap_or_default()
}
