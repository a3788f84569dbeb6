//! Canonical JSON of a document given as text, read in one pass.
//!
//! Reads what Python's `json.loads` reads (lone surrogate escapes such as
//! `"\ud800"` included, nesting up to [`MAX_DEPTH`]) and writes what
//! `json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))`
//! writes. A parse into `serde_json::Value` can do neither, so a trace that
//! the runtime wrote could not be verified from its file.
//!
//! This is on the path of every payload given as text (a Node `record()`,
//! an event file being verified), so it allocates only the answer: string
//! values are escaped straight into it, keys are sorted as byte ranges of
//! the text, and the path of a fault is worked out only when there is one.
//! The working buffers are kept per thread between calls.

use std::cell::RefCell;

use super::{
    push_index, push_key, too_deep, write_code_point, write_number_text, write_str, write_str_body,
    MAX_DEPTH,
};
use crate::error::{CoreError, Result};

/// Working buffers bigger than this are let go after a call, so one huge
/// document does not keep its memory on the thread.
const KEEP_BYTES: usize = 64 * 1024;

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Canonical text of the JSON document `text`.
pub fn text_to_canonical(text: &str) -> Result<String> {
    // The thread's buffers are used where they are (moving them in and out
    // cost more than the read of a small document).
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut w) => read(text, &mut w),
        Err(_) => read(text, &mut Scratch::default()),
    })
}

fn read(text: &str, w: &mut Scratch) -> Result<String> {
    let mut p = Parser {
        text,
        s: text.as_bytes(),
        i: 0,
        w,
    };
    let mut out = Vec::with_capacity(text.len());
    let read = p.document(&mut out);
    p.w.reset();
    read?;
    // Only ASCII is ever written.
    Ok(String::from_utf8(out).expect("canonical JSON is ASCII"))
}

/// Where a key's text is: a range of the document (a key without escapes,
/// whose UTF-8 bytes sort as its code points do), or of `Scratch::keys`
/// (a key with escapes, decoded to generalized UTF-8, which keeps lone
/// surrogates and sorts the same way).
#[derive(Clone, Copy)]
enum Key {
    Text(usize, usize),
    Decoded(usize, usize),
}

/// One step of the path to the value being read.
#[derive(Clone, Copy)]
enum Step {
    Key(Key),
    Index(usize),
}

/// A member of an object being read: its key and where its canonical
/// value sits in the object's value buffer.
struct Member {
    key: Key,
    start: usize,
    end: usize,
}

#[derive(Default)]
struct Scratch {
    steps: Vec<Step>,
    members: Vec<Member>,
    keys: Vec<u8>,
    /// Value buffers of the objects being read, reused.
    buffers: Vec<Vec<u8>>,
}

impl Scratch {
    fn reset(&mut self) {
        self.steps.clear();
        self.members.clear();
        self.keys.clear();
        if self.keys.capacity() > KEEP_BYTES {
            self.keys = Vec::new();
        }
        self.buffers
            .retain(|b| b.capacity() <= KEEP_BYTES && b.is_empty());
        self.buffers.truncate(8);
    }
}

struct Parser<'a, 'w> {
    text: &'a str,
    s: &'a [u8],
    i: usize,
    w: &'w mut Scratch,
}

fn key_bytes<'b>(key: Key, s: &'b [u8], keys: &'b [u8]) -> &'b [u8] {
    match key {
        Key::Text(a, b) => &s[a..b],
        Key::Decoded(a, b) => &keys[a..b],
    }
}

/// The code points of generalized UTF-8 (UTF-8 that may hold surrogates).
fn code_points(bytes: &[u8]) -> impl Iterator<Item = u32> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        let b0 = *bytes.get(i)? as u32;
        let cont = |k: usize| (bytes[i + k] & 0x3f) as u32;
        let (cp, n) = match b0 {
            0..=0x7f => (b0, 1),
            0xc0..=0xdf => (((b0 & 0x1f) << 6) | cont(1), 2),
            0xe0..=0xef => (((b0 & 0x0f) << 12) | (cont(1) << 6) | cont(2), 3),
            _ => (
                ((b0 & 0x07) << 18) | (cont(1) << 12) | (cont(2) << 6) | cont(3),
                4,
            ),
        };
        i += n;
        Some(cp)
    })
}

/// Appends `cp` (a surrogate too) as generalized UTF-8.
fn push_code_point(out: &mut Vec<u8>, cp: u32) {
    match char::from_u32(cp) {
        Some(c) => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        // A lone surrogate: the three-byte form UTF-8 would give it.
        None => out.extend_from_slice(&[
            0xe0 | (cp >> 12) as u8,
            0x80 | ((cp >> 6) & 0x3f) as u8,
            0x80 | (cp & 0x3f) as u8,
        ]),
    }
}

impl Parser<'_, '_> {
    fn document(&mut self, out: &mut Vec<u8>) -> Result<()> {
        self.value(out, 0)?;
        self.ws();
        if self.i != self.s.len() {
            return Err(self.err("unexpected characters after the value"));
        }
        Ok(())
    }

    /// The JSON pointer of the value being read (only made for a fault).
    fn path(&self) -> String {
        let mut path = String::new();
        for step in &self.w.steps {
            match *step {
                Step::Index(i) => push_index(&mut path, i),
                Step::Key(k) => {
                    let name: String = code_points(key_bytes(k, self.s, &self.w.keys))
                        .map(|c| char::from_u32(c).unwrap_or('\u{fffd}'))
                        .collect();
                    push_key(&mut path, &name);
                }
            }
        }
        path
    }

    fn err(&self, what: &str) -> CoreError {
        CoreError::invalid(
            "INVALID_PAYLOAD",
            self.path().as_str(),
            format!("not JSON: {what} at byte {}", self.i),
        )
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.i) {
            self.i += 1;
        }
    }

    fn expect(&mut self, b: u8) -> Result<()> {
        self.ws();
        if self.s.get(self.i) != Some(&b) {
            return Err(self.err(&format!("expected '{}'", b as char)));
        }
        self.i += 1;
        Ok(())
    }

    fn value(&mut self, out: &mut Vec<u8>, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(too_deep(&self.path()));
        }
        self.ws();
        match self.s.get(self.i) {
            Some(b'{') => self.object(out, depth),
            Some(b'[') => self.array(out, depth),
            Some(b'"') => self.string(out),
            Some(b'-' | b'0'..=b'9') => self.number(out),
            Some(_) => {
                for lit in ["null", "true", "false"] {
                    if self.s[self.i..].starts_with(lit.as_bytes()) {
                        self.i += lit.len();
                        out.extend_from_slice(lit.as_bytes());
                        return Ok(());
                    }
                }
                Err(self.err("expected a value"))
            }
            None => Err(self.err("unexpected end of text")),
        }
    }

    fn array(&mut self, out: &mut Vec<u8>, depth: usize) -> Result<()> {
        self.i += 1;
        out.push(b'[');
        self.ws();
        if self.s.get(self.i) == Some(&b']') {
            self.i += 1;
            out.push(b']');
            return Ok(());
        }
        for index in 0.. {
            if index > 0 {
                out.push(b',');
            }
            self.w.steps.push(Step::Index(index));
            self.value(out, depth + 1)?;
            self.w.steps.pop();
            self.ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b']') => break,
                _ => return Err(self.err("expected ',' or ']'")),
            }
        }
        self.i += 1;
        out.push(b']');
        Ok(())
    }

    fn object(&mut self, out: &mut Vec<u8>, depth: usize) -> Result<()> {
        self.i += 1;
        self.ws();
        if self.s.get(self.i) == Some(&b'}') {
            self.i += 1;
            out.extend_from_slice(b"{}");
            return Ok(());
        }
        // Members' values are written to `values` as read, then emitted
        // in key order.
        let base = self.w.members.len();
        let keys_base = self.w.keys.len();
        let mut values = self.w.buffers.pop().unwrap_or_default();
        loop {
            self.ws();
            if self.s.get(self.i) != Some(&b'"') {
                return Err(self.err("expected a string key"));
            }
            let key = self.key()?;
            self.expect(b':')?;
            self.w.steps.push(Step::Key(key));
            let start = values.len();
            self.value(&mut values, depth + 1)?;
            self.w.steps.pop();
            let end = values.len();
            self.w.members.push(Member { key, start, end });
            self.ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => break,
                _ => return Err(self.err("expected ',' or '}'")),
            }
        }
        self.i += 1;
        let Scratch { members, keys, .. } = &mut *self.w;
        let s = self.s;
        let members = &mut members[base..];
        // Stable, so that of equal keys the last one read (Python's) is last.
        members.sort_by(|a, b| key_bytes(a.key, s, keys).cmp(key_bytes(b.key, s, keys)));
        out.push(b'{');
        let mut first = true;
        for (n, m) in members.iter().enumerate() {
            let name = key_bytes(m.key, s, keys);
            if members
                .get(n + 1)
                .is_some_and(|next| key_bytes(next.key, s, keys) == name)
            {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            match m.key {
                Key::Text(a, b) => write_str(out, &self.text[a..b]),
                Key::Decoded(..) => {
                    out.push(b'"');
                    for cp in code_points(name) {
                        write_code_point(out, cp);
                    }
                    out.push(b'"');
                }
            }
            out.push(b':');
            out.extend_from_slice(&values[m.start..m.end]);
        }
        out.push(b'}');
        self.w.members.truncate(base);
        self.w.keys.truncate(keys_base);
        values.clear();
        self.w.buffers.push(values);
        Ok(())
    }

    /// Moves past text that stands for itself inside a string literal (no
    /// quote, backslash or control character); `i` stays on a char boundary.
    fn plain(&mut self) {
        while let Some(&b) = self.s.get(self.i) {
            if b == b'"' || b == b'\\' || b < 0x20 {
                return;
            }
            self.i += 1;
        }
    }

    /// A string value, written escaped straight to `out`.
    fn string(&mut self, out: &mut Vec<u8>) -> Result<()> {
        self.i += 1;
        out.push(b'"');
        loop {
            let start = self.i;
            self.plain();
            write_str_body(out, &self.text[start..self.i]);
            match self.s.get(self.i) {
                Some(b'"') => {
                    self.i += 1;
                    out.push(b'"');
                    return Ok(());
                }
                // An escaped surrogate pair is written as the two escapes
                // it is (what Python writes for the one character).
                Some(b'\\') => write_code_point(out, self.escape(false)?),
                Some(_) => return Err(self.err("control character in string")),
                None => return Err(self.err("unterminated string")),
            }
        }
    }

    /// A key: a range of the text when it has no escape, else decoded.
    fn key(&mut self) -> Result<Key> {
        self.i += 1;
        let start = self.i;
        self.plain();
        if self.s.get(self.i) == Some(&b'"') {
            self.i += 1;
            return Ok(Key::Text(start, self.i - 1));
        }
        let from = self.w.keys.len();
        self.w.keys.extend_from_slice(&self.s[start..self.i]);
        loop {
            match self.s.get(self.i) {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(Key::Decoded(from, self.w.keys.len()));
                }
                Some(b'\\') => {
                    let cp = self.escape(true)?;
                    push_code_point(&mut self.w.keys, cp);
                }
                Some(_) => return Err(self.err("control character in string")),
                None => return Err(self.err("unterminated string")),
            }
            let start = self.i;
            self.plain();
            self.w.keys.extend_from_slice(&self.s[start..self.i]);
        }
    }

    /// An escape at `i`: its code point, or with `pair` the one character
    /// of an escaped high surrogate followed by an escaped low one (any
    /// other surrogate stays as it is, as in Python).
    fn escape(&mut self, pair: bool) -> Result<u32> {
        let c = match self.s.get(self.i + 1) {
            Some(b'"') => '"' as u32,
            Some(b'\\') => '\\' as u32,
            Some(b'/') => '/' as u32,
            Some(b'b') => 0x08,
            Some(b'f') => 0x0c,
            Some(b'n') => '\n' as u32,
            Some(b'r') => '\r' as u32,
            Some(b't') => '\t' as u32,
            Some(b'u') => {
                let hi = self.hex4(self.i + 2)?;
                self.i += 6;
                if pair && (0xd800..0xdc00).contains(&hi) && self.s[self.i..].starts_with(b"\\u") {
                    let lo = self.hex4(self.i + 2)?;
                    if (0xdc00..0xe000).contains(&lo) {
                        self.i += 6;
                        return Ok(0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00));
                    }
                }
                return Ok(hi);
            }
            _ => return Err(self.err("invalid escape")),
        };
        self.i += 2;
        Ok(c)
    }

    fn hex4(&self, at: usize) -> Result<u32> {
        let digits = self
            .s
            .get(at..at + 4)
            .ok_or_else(|| self.err("short \\u escape"))?;
        let mut v = 0;
        for &d in digits {
            let n = (d as char)
                .to_digit(16)
                .ok_or_else(|| self.err("invalid \\u escape"))?;
            v = v * 16 + n;
        }
        Ok(v)
    }

    fn number(&mut self, out: &mut Vec<u8>) -> Result<()> {
        let start = self.i;
        let digits = |p: &mut Self| {
            let from = p.i;
            while p.s.get(p.i).is_some_and(u8::is_ascii_digit) {
                p.i += 1;
            }
            p.i - from
        };
        if self.s[self.i] == b'-' {
            self.i += 1;
        }
        match self.s.get(self.i) {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return Err(self.err("invalid number")),
        }
        if self.s.get(self.i) == Some(&b'.') {
            self.i += 1;
            if digits(self) == 0 {
                return Err(self.err("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = self.s.get(self.i) {
            self.i += 1;
            if let Some(b'+' | b'-') = self.s.get(self.i) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return Err(self.err("invalid number"));
            }
        }
        // The path is worked out only for a number that cannot be written.
        let text = &self.text[start..self.i];
        write_number_text(out, text, "").or_else(|_| write_number_text(out, text, &self.path()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(text: &str) -> String {
        text_to_canonical(text).unwrap()
    }

    #[test]
    fn matches_python() {
        assert_eq!(
            canon(
                r#" { "b" : [1, 2.50, -0, 1E5, "\u00e9\ud83d\ude00"], "a": {"\ud800": null}, "b": true } "#
            ),
            r#"{"a":{"\ud800":null},"b":true}"#
        );
        assert_eq!(
            canon(r#"["caf\u00e9 \/ \ud83d", 123456789012345678901234567890]"#),
            r#"["caf\u00e9 / \ud83d",123456789012345678901234567890]"#
        );
        assert_eq!(canon("\"\u{1f600}\u{e9}\""), r#""\ud83d\ude00\u00e9""#);
    }

    #[test]
    fn refuses_what_is_not_json() {
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\":1,}",
            "01",
            "1.",
            "-",
            "\"\u{1}\"",
            "[1] 2",
            "NaN",
            "1e999",
            "\"\\x\"",
        ] {
            assert!(text_to_canonical(bad).is_err(), "{bad:?}");
        }
        let err = text_to_canonical(r#"{"a":[1,{"b":nul}]}"#).unwrap_err();
        assert_eq!(err.path(), Some("/a/1/b"));
    }

    #[test]
    fn depth_is_bounded() {
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert_eq!(canon(&ok), ok);
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        assert!(text_to_canonical(&deep).is_err());
    }
}
