//! Canonical JSON of a document given as text, read in one pass.
//!
//! Reads what Python's `json.loads` reads (lone surrogate escapes such as
//! `"\ud800"` included, nesting up to [`MAX_DEPTH`]) and writes what
//! `json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))`
//! writes. A parse into `serde_json::Value` can do neither, so a trace that
//! the runtime wrote could not be verified from its file.

use super::{push_index, push_key, too_deep, write_code_points, write_number_text, MAX_DEPTH};
use crate::error::{CoreError, Result};

/// Canonical text of the JSON document `text`.
pub fn text_to_canonical(text: &str) -> Result<String> {
    let mut p = Parser {
        text,
        s: text.as_bytes(),
        i: 0,
        path: String::new(),
        scratch: Vec::new(),
    };
    let mut out = Vec::with_capacity(text.len());
    p.value(&mut out, 0)?;
    p.ws();
    if p.i != p.s.len() {
        return Err(p.err("unexpected characters after the value"));
    }
    // Only ASCII is ever written.
    Ok(String::from_utf8(out).expect("canonical JSON is ASCII"))
}

struct Parser<'a> {
    text: &'a str,
    s: &'a [u8],
    i: usize,
    /// JSON pointer of the value being read, for error messages.
    path: String,
    /// Code points of a string value being read.
    scratch: Vec<u32>,
}

impl Parser<'_> {
    fn err(&self, what: &str) -> CoreError {
        CoreError::invalid(
            "INVALID_PAYLOAD",
            self.path.as_str(),
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
            return Err(too_deep(&self.path));
        }
        self.ws();
        match self.s.get(self.i) {
            Some(b'{') => self.object(out, depth),
            Some(b'[') => self.array(out, depth),
            Some(b'"') => {
                let mut cps = std::mem::take(&mut self.scratch);
                cps.clear();
                self.string(&mut cps)?;
                write_code_points(out, cps.iter().copied());
                self.scratch = cps;
                Ok(())
            }
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
            let len = self.path.len();
            push_index(&mut self.path, index);
            self.value(out, depth + 1)?;
            self.path.truncate(len);
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
        // Members are written to `values` as read, then emitted sorted.
        let mut members: Vec<(Vec<u32>, usize, usize)> = Vec::new();
        let mut values = Vec::new();
        loop {
            self.ws();
            if self.s.get(self.i) != Some(&b'"') {
                return Err(self.err("expected a string key"));
            }
            let mut key = Vec::new();
            self.string(&mut key)?;
            self.expect(b':')?;
            let len = self.path.len();
            let name: String = key
                .iter()
                .map(|&c| char::from_u32(c).unwrap_or('\u{fffd}'))
                .collect();
            push_key(&mut self.path, &name);
            let start = values.len();
            self.value(&mut values, depth + 1)?;
            self.path.truncate(len);
            members.push((key, start, values.len()));
            self.ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => break,
                _ => return Err(self.err("expected ',' or '}'")),
            }
        }
        self.i += 1;
        // Stable, so that of equal keys the last one read (Python's) is last.
        members.sort_by(|a, b| a.0.cmp(&b.0));
        out.push(b'{');
        let mut first = true;
        for (n, (key, start, end)) in members.iter().enumerate() {
            if members.get(n + 1).is_some_and(|next| next.0 == *key) {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            write_code_points(out, key.iter().copied());
            out.push(b':');
            out.extend_from_slice(&values[*start..*end]);
        }
        out.push(b'}');
        Ok(())
    }

    /// Reads a string literal into code points (lone surrogates kept).
    fn string(&mut self, cps: &mut Vec<u32>) -> Result<()> {
        self.i += 1;
        loop {
            let Some(&b) = self.s.get(self.i) else {
                return Err(self.err("unterminated string"));
            };
            match b {
                b'"' => {
                    self.i += 1;
                    return Ok(());
                }
                b'\\' => self.escape(cps)?,
                0..=0x1f => return Err(self.err("control character in string")),
                0x20..=0x7f => {
                    cps.push(b as u32);
                    self.i += 1;
                }
                _ => {
                    // `text` is a str and `i` sits on a char boundary.
                    let c = self.text[self.i..].chars().next().unwrap_or('\u{fffd}');
                    cps.push(c as u32);
                    self.i += c.len_utf8();
                }
            }
        }
    }

    fn escape(&mut self, cps: &mut Vec<u32>) -> Result<()> {
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
                // A high surrogate followed by an escaped low one is one
                // character; any other surrogate stays as it is (as in Python).
                if (0xd800..0xdc00).contains(&hi) && self.s[self.i..].starts_with(b"\\u") {
                    let lo = self.hex4(self.i + 2)?;
                    if (0xdc00..0xe000).contains(&lo) {
                        self.i += 6;
                        cps.push(0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00));
                        return Ok(());
                    }
                }
                cps.push(hi);
                return Ok(());
            }
            _ => return Err(self.err("invalid escape")),
        };
        self.i += 2;
        cps.push(c);
        Ok(())
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
        write_number_text(out, &self.text[start..self.i], &self.path)
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
