//! Canonical JSON: byte for byte what Python's
//! `json.dumps(v, sort_keys=True, separators=(",", ":"))` writes
//! (ASCII only, `\uXXXX` escapes, surrogate pairs, Python float repr,
//! integers of any size). This is the one writer of the project; its
//! reader of JSON text (for text that is already JSON) is `text`.

use serde_json::Value;
use smallvec::SmallVec;

use crate::error::{CoreError, Result};

pub mod text;

/// Nesting deeper than this is refused rather than risking the stack.
pub const MAX_DEPTH: usize = 1000;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `s` as a JSON string literal with Python's ASCII escaping.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    write_str_body(out, s);
    out.push(b'"');
}

/// Appends `s` escaped as inside a JSON string literal (no quotes).
pub(super) fn write_str_body(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    // Most text needs no escape: skip it eight bytes at a time.
    let plain = plain_prefix(bytes);
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate().skip(plain) {
        if b >= 0x80 {
            // Everything before `i` is ASCII, so `i` is a char boundary.
            out.extend_from_slice(&bytes[start..i]);
            for c in s[i..].chars() {
                write_code_point(out, c as u32);
            }
            return;
        }
        if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        write_ascii_escape(out, b);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// How many leading bytes of `bytes`, in whole 8-byte words, are printable
/// ASCII other than `"` and `\` (written as they are); the rest is checked
/// byte by byte.
fn plain_prefix(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // A byte of `v` is zero <=> its high bit is set in `has_zero(v)`.
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let splat = |b: u8| u64::from_ne_bytes([b; 8]);
    let mut n = 0;
    for word in bytes.chunks_exact(8) {
        let x = u64::from_ne_bytes(word.try_into().unwrap_or([0; 8]));
        // Below 0x20 (control) or from 0x80 (not ASCII): `x - 0x20` borrows
        // into the high bit, or the high bit is already set.
        let outside = (x.wrapping_sub(splat(0x20)) | x) & HIGHS;
        let special =
            has_zero(x ^ splat(b'"')) | has_zero(x ^ splat(b'\\')) | has_zero(x ^ splat(0x7f));
        if outside | special != 0 {
            break;
        }
        n += 8;
    }
    n
}

/// Appends a string given as code points (may hold lone surrogates, as
/// Python strings may) with the same escaping as [`write_str`].
pub fn write_code_points(out: &mut Vec<u8>, cps: impl IntoIterator<Item = u32>) {
    out.push(b'"');
    for cp in cps {
        write_code_point(out, cp);
    }
    out.push(b'"');
}

pub(super) fn write_code_point(out: &mut Vec<u8>, cp: u32) {
    if cp < 0x80 {
        let b = cp as u8;
        if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
            out.push(b);
        } else {
            write_ascii_escape(out, b);
        }
    } else if cp < 0x10000 {
        write_u_escape(out, cp as u16);
    } else {
        let v = cp - 0x10000;
        write_u_escape(out, 0xd800 | (v >> 10) as u16);
        write_u_escape(out, 0xdc00 | (v & 0x3ff) as u16);
    }
}

fn write_ascii_escape(out: &mut Vec<u8>, b: u8) {
    match b {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        _ => write_u_escape(out, b as u16),
    }
}

fn write_u_escape(out: &mut Vec<u8>, u: u16) {
    out.extend_from_slice(&[
        b'\\',
        b'u',
        HEX[(u >> 12) as usize & 0xf],
        HEX[(u >> 8) as usize & 0xf],
        HEX[(u >> 4) as usize & 0xf],
        HEX[u as usize & 0xf],
    ]);
}

/// Appends `f` the way Python's `float.__repr__` writes it; NaN and the
/// infinities are refused (`path` names where the value was).
pub fn write_f64(out: &mut Vec<u8>, f: f64, path: &str) -> Result<()> {
    if !f.is_finite() {
        return Err(CoreError::invalid(
            "INVALID_PAYLOAD",
            path,
            format!("{f} is not valid JSON (NaN and infinities are refused)"),
        ));
    }
    if f.is_sign_negative() {
        out.push(b'-');
    }
    let mut buf = ryu::Buffer::new();
    let (digits, decpt) = shortest_digits(buf.format_finite(f.abs()));
    if digits.is_empty() {
        out.extend_from_slice(b"0.0");
        return Ok(());
    }
    let n = digits.len() as i32;
    if -4 < decpt && decpt <= 16 {
        if decpt <= 0 {
            out.extend_from_slice(b"0.");
            out.resize(out.len() + (-decpt) as usize, b'0');
            out.extend_from_slice(&digits);
        } else if decpt >= n {
            out.extend_from_slice(&digits);
            out.resize(out.len() + (decpt - n) as usize, b'0');
            out.extend_from_slice(b".0");
        } else {
            out.extend_from_slice(&digits[..decpt as usize]);
            out.push(b'.');
            out.extend_from_slice(&digits[decpt as usize..]);
        }
    } else {
        out.push(digits[0]);
        if n > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        let exp = decpt - 1;
        out.push(b'e');
        out.push(if exp < 0 { b'-' } else { b'+' });
        let e = exp.unsigned_abs();
        if e < 10 {
            out.push(b'0');
        }
        out.extend_from_slice(e.to_string().as_bytes());
    }
    Ok(())
}

/// Splits ryu's shortest round-trip text into significant digits (no
/// leading or trailing zeros) and the decimal point position.
fn shortest_digits(text: &str) -> (Vec<u8>, i32) {
    let (mantissa, exp) = match text.find('e') {
        Some(i) => (&text[..i], text[i + 1..].parse::<i32>().unwrap_or(0)),
        None => (text, 0),
    };
    let (int_part, frac_part) = match mantissa.find('.') {
        Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
        None => (mantissa, ""),
    };
    let mut digits: Vec<u8> = int_part.bytes().chain(frac_part.bytes()).collect();
    let mut decpt = int_part.len() as i32 + exp;
    let lead = digits.iter().take_while(|&&d| d == b'0').count();
    digits.drain(..lead);
    decpt -= lead as i32;
    while digits.last() == Some(&b'0') {
        digits.pop();
    }
    (digits, decpt)
}

/// Appends a JSON number read from text: integers keep every digit,
/// anything with a fraction or exponent is a float in Python repr.
pub fn write_number_text(out: &mut Vec<u8>, text: &str, path: &str) -> Result<()> {
    if text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')) {
        let f: f64 = text.parse().map_err(|_| {
            CoreError::invalid("INVALID_PAYLOAD", path, format!("bad number {text}"))
        })?;
        return write_f64(out, f, path);
    }
    let digits = text.trim_start_matches('-');
    if digits.bytes().all(|b| b == b'0') {
        out.push(b'0');
    } else {
        out.extend_from_slice(text.as_bytes());
    }
    Ok(())
}

/// Where a value sits in its document: steps kept on the stack while a
/// tree is walked, made into a JSON pointer only when a fault names it.
#[derive(Clone, Copy)]
pub enum At<'a> {
    Root,
    Key(&'a At<'a>, &'a str),
    Index(&'a At<'a>, usize),
}

impl At<'_> {
    /// The JSON pointer of this place.
    pub fn pointer(&self) -> String {
        let mut path = String::new();
        self.write(&mut path);
        path
    }

    fn write(&self, path: &mut String) {
        match *self {
            At::Root => {}
            At::Key(up, key) => {
                up.write(path);
                push_key(path, key);
            }
            At::Index(up, i) => {
                up.write(path);
                push_index(path, i);
            }
        }
    }
}

/// Canonical text of a parsed JSON value.
pub fn to_canonical(v: &Value) -> Result<String> {
    let mut out = Vec::with_capacity(128);
    write_value(&mut out, v, &At::Root, 0)?;
    // Only ASCII is ever written.
    Ok(String::from_utf8(out).expect("canonical JSON is ASCII"))
}

/// Appends the canonical text of `v`, which sits at `at`.
pub fn write_value(out: &mut Vec<u8>, v: &Value, at: &At<'_>, depth: usize) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(too_deep(&at.pointer()));
    }
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number_text(out, &n.to_string(), "")
            .map_err(|e| CoreError::invalid("INVALID_PAYLOAD", at.pointer(), e.message()))?,
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item, &At::Index(at, i), depth + 1)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut entries: SmallVec<[(&String, &Value); 16]> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (k, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, k);
                out.push(b':');
                write_value(out, item, &At::Key(at, k), depth + 1)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

pub fn too_deep(path: &str) -> CoreError {
    CoreError::invalid(
        "INVALID_PAYLOAD",
        path,
        format!("nesting deeper than {MAX_DEPTH} levels"),
    )
}

/// Extends a JSON pointer by an array index.
pub fn push_index(path: &mut String, i: usize) {
    path.push('/');
    path.push_str(&i.to_string());
}

/// Extends a JSON pointer by an object key (RFC 6901 escaping).
pub fn push_key(path: &mut String, key: &str) {
    path.push('/');
    if memchr::memchr2(b'~', b'/', key.as_bytes()).is_none() {
        path.push_str(key);
        return;
    }
    for c in key.chars() {
        match c {
            '~' => path.push_str("~0"),
            '/' => path.push_str("~1"),
            c => path.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float(f: f64) -> String {
        let mut out = Vec::new();
        write_f64(&mut out, f, "").unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn floats_follow_python_repr() {
        let cases = [
            (0.1, "0.1"),
            (1e-7, "1e-07"),
            (1e16, "1e+16"),
            (1.5e300, "1.5e+300"),
            (2.0, "2.0"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1234567890123456.0, "1234567890123456.0"),
            (12345678901234567.0, "1.2345678901234568e+16"),
            (123.456, "123.456"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (100.0, "100.0"),
        ];
        for (f, want) in cases {
            assert_eq!(float(f), want, "{f:e}");
        }
    }

    #[test]
    fn non_finite_is_refused() {
        let mut out = Vec::new();
        let err = write_f64(&mut out, f64::NAN, "/x").unwrap_err();
        assert_eq!(err.path(), Some("/x"));
        assert!(write_f64(&mut out, f64::INFINITY, "").is_err());
    }

    #[test]
    fn strings_escape_like_python() {
        let mut out = Vec::new();
        write_str(&mut out, "café — 😀 \"q\" \\ \n\t\u{1}\u{7f}");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#""caf\u00e9 \u2014 \ud83d\ude00 \"q\" \\ \n\t\u0001\u007f""#
        );
    }

    #[test]
    fn values_sort_keys_and_keep_big_ints() {
        let v: Value =
            serde_json::from_str(r#"{"b":{"y":1,"x":[3,{"k2":2,"k1":1}]},"a":{},"A":[],"n":123456789012345678901234567890,"z":-0,"f":1E5}"#)
                .unwrap();
        assert_eq!(
            to_canonical(&v).unwrap(),
            r#"{"A":[],"a":{},"b":{"x":[3,{"k1":1,"k2":2}],"y":1},"f":100000.0,"n":123456789012345678901234567890,"z":0}"#
        );
    }

    #[test]
    fn places_become_escaped_pointers_only_when_asked() {
        let root = At::Root;
        let a = At::Key(&root, "a/b");
        let i = At::Index(&a, 2);
        let c = At::Key(&i, "c~d");
        assert_eq!(root.pointer(), "");
        assert_eq!(c.pointer(), "/a~1b/2/c~0d");
    }

    #[test]
    fn too_deep_values_are_named_by_their_place() {
        let mut v = Value::Null;
        for _ in 0..=MAX_DEPTH {
            v = Value::Array(vec![v]);
        }
        let v = serde_json::json!({"x/y": v});
        let err = to_canonical(&v).unwrap_err();
        let path = err.path().unwrap();
        assert!(path.starts_with("/x~1y/0/0/"), "{path}");
        assert_eq!(path.matches('/').count(), MAX_DEPTH + 1);
    }
}

#[cfg(test)]
mod write_str_tests {
    use super::*;

    /// `write_str` without the word-at-a-time skip: byte by byte.
    fn reference(s: &str) -> Vec<u8> {
        let mut out = vec![b'"'];
        for c in s.chars() {
            write_code_point(&mut out, c as u32);
        }
        out.push(b'"');
        out
    }

    fn written(s: &str) -> Vec<u8> {
        let mut out = Vec::new();
        write_str(&mut out, s);
        out
    }

    #[test]
    fn every_ascii_byte_at_every_position_is_escaped_as_byte_by_byte() {
        for len in 0..=20 {
            let base: String = (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
            assert_eq!(written(&base), reference(&base));
            for pos in 0..len {
                for b in 0u8..=0x7f {
                    let mut bytes = base.clone().into_bytes();
                    bytes[pos] = b;
                    let s = String::from_utf8(bytes).unwrap();
                    assert_eq!(written(&s), reference(&s), "{s:?}");
                }
            }
        }
    }

    #[test]
    fn non_ascii_after_plain_words_is_escaped() {
        for s in [
            "abcdefgh\u{e9}",
            "abcdefghijklmnop\u{1f600}x",
            "abcdefg\u{7f}",
            "\u{2028}abcdefgh",
        ] {
            assert_eq!(written(s), reference(s), "{s:?}");
        }
    }
}
