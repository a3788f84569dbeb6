//! YAML atlas files (`atlas.yaml`, `policies/*.yaml`, ...): their text
//! read into the same JSON value a JSON file gives, and the line of a JSON
//! pointer in that text, so a fault found later names its line.
//!
//! Read by `saphyr-parser`'s events, under the YAML 1.2 core schema, with
//! what would change a meaning silently refused: a duplicate key, a key
//! that is not a string, a merge key (`<<`), a tag other than `!!str`, a
//! number with a leading zero (octal in YAML 1.1), `.inf`/`.nan`, and more
//! than one document. `yes`, `on`, `1.0.0` or `2024-01-01` stay strings.
//! Aliases are expanded under `max_manifest_bytes`, counted as compact
//! JSON (a "billion laughs" stops there), and nesting under
//! `max_json_depth`, both before anything past them is built.

use std::collections::{HashMap, HashSet};

use saphyr_parser::{Event, Parser, ScalarStyle, Tag};
use serde_json::{Map, Number, Value};

use crate::atlas::limits::{too_large, AtlasLimits};
use crate::atlas::text_depth::Base;
use crate::error::{CoreError, Fault, Result};
use crate::json::fields::{at, at_index, type_name};

/// Is this the name of a YAML file (`.yaml` or `.yml`)?
pub fn is_yaml_name(name: &str) -> bool {
    name.ends_with(".yaml") || name.ends_with(".yml")
}

/// How a fault names its place: the file, the line and the JSON pointer.
pub fn place(file: &str, line: usize, pointer: &str) -> String {
    if pointer.is_empty() {
        format!("{file}, line {line}")
    } else {
        format!("{file}, line {line}, at {pointer}")
    }
}

enum Frame {
    Seq {
        items: Vec<Value>,
        first: usize,
        anchor: usize,
        size_before: u64,
    },
    Map {
        map: Map<String, Value>,
        key: Option<String>,
        anchor: usize,
        size_before: u64,
    },
}

struct Reader<'a> {
    file: &'a str,
    base: &'a Base<'a>,
    limits: &'a AtlasLimits,
    /// Compact-JSON bytes built so far (this file and those read before).
    used: &'a mut u64,
    line: usize,
    stack: Vec<Frame>,
    /// Finished anchored nodes and their size.
    anchors: HashMap<usize, (Value, u64)>,
    root: Option<Value>,
}

/// Reads YAML `text` into a JSON value. `used` counts the compact-JSON
/// size of what the atlas's files built so far; past `max_manifest_bytes`
/// (aliases expanded) the file is `ATLAS_TOO_LARGE`.
pub fn parse_yaml(
    text: &[u8],
    file: &str,
    base: &Base<'_>,
    limits: &AtlasLimits,
    used: &mut u64,
) -> Result<Value> {
    let text = std::str::from_utf8(text).map_err(|e| {
        CoreError::AtlasInvalid(vec![Fault::new(
            "",
            format!("{file} is not UTF-8 text: {e}"),
        )])
    })?;
    let mut r = Reader {
        file,
        base,
        limits,
        used,
        line: 1,
        stack: Vec::new(),
        anchors: HashMap::new(),
        root: None,
    };
    let mut documents = 0;
    for event in Parser::new_from_str(text) {
        let (event, span) = match event {
            Ok(e) => e,
            Err(e) => {
                r.line = e.marker().line();
                return Err(r.fault(&r.here(), format!("not valid YAML: {}", e.info())));
            }
        };
        r.line = span.start.line();
        match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(r.fault("", "holds more than one YAML document".into()));
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                r.scalar(&text, style, anchor, tag.as_deref())?
            }
            Event::SequenceStart(anchor, tag) => r.open(false, anchor, tag.as_deref())?,
            Event::MappingStart(anchor, tag) => r.open(true, anchor, tag.as_deref())?,
            Event::SequenceEnd | Event::MappingEnd => r.close()?,
            Event::Alias(id) => r.alias(id)?,
            _ => {}
        }
    }
    r.root.ok_or_else(|| {
        CoreError::AtlasInvalid(vec![Fault::new(
            "",
            format!("{}: holds no YAML document", place(file, 1, "")),
        )])
    })
}

impl Reader<'_> {
    fn fault(&self, pointer: &str, what: String) -> CoreError {
        CoreError::AtlasInvalid(vec![Fault::new(
            pointer,
            format!("{}: {what}", place(self.file, self.line, pointer)),
        )])
    }

    /// The pointer of the node being read now (for a mapping with no key
    /// read yet, the mapping's own).
    fn here(&self) -> String {
        let mut p = self.base.pointer.to_string();
        for f in &self.stack {
            match f {
                Frame::Seq { items, first, .. } => p = at_index(&p, first + items.len()),
                Frame::Map { key: Some(k), .. } => p = at(&p, k),
                Frame::Map { key: None, .. } => {}
            }
        }
        p
    }

    fn key_expected(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { key: None, .. }))
    }

    /// Counts `bytes` more of compact JSON, refusing past the limit.
    fn grow(&mut self, bytes: u64) -> Result<()> {
        *self.used += bytes;
        let max = self.limits.max_manifest_bytes;
        if *self.used > max {
            let p = self.here();
            return Err(too_large(
                p.clone(),
                &format!(
                    "{}: the YAML, its aliases expanded, is larger than {max} bytes as JSON",
                    place(self.file, self.line, &p)
                ),
                "max_manifest_bytes",
                max,
            ));
        }
        Ok(())
    }

    /// Puts a finished value where the reader is.
    fn put(&mut self, v: Value) {
        match self.stack.last_mut() {
            None => self.root = Some(v),
            Some(Frame::Seq { items, .. }) => items.push(v),
            Some(Frame::Map { map, key, .. }) => {
                if let Some(k) = key.take() {
                    map.insert(k, v);
                }
            }
        }
    }

    fn scalar(
        &mut self,
        text: &str,
        style: ScalarStyle,
        anchor: usize,
        tag: Option<&Tag>,
    ) -> Result<()> {
        let value = resolve(text, style, tag).map_err(|what| self.fault(&self.here(), what))?;
        if self.key_expected() {
            return self.key(text, style, tag, value);
        }
        let size = match &value {
            Value::String(s) => s.len() as u64 + 3,
            Value::Number(n) => n.to_string().len() as u64 + 1,
            Value::Bool(true) => 5,
            Value::Bool(false) | Value::Null => 6,
            _ => 1,
        };
        self.grow(size)?;
        if anchor != 0 {
            self.anchors.insert(anchor, (value.clone(), size));
        }
        self.put(value);
        Ok(())
    }

    fn key(
        &mut self,
        text: &str,
        style: ScalarStyle,
        tag: Option<&Tag>,
        value: Value,
    ) -> Result<()> {
        let Value::String(k) = value else {
            return Err(self.fault(
                &self.here(),
                format!(
                    "the key {text} is not a string (a {}): quote it",
                    type_name(&value)
                ),
            ));
        };
        if k == "<<" && style == ScalarStyle::Plain && tag.is_none() {
            return Err(self.fault(
                &self.here(),
                "merge keys (<<) are not supported: write the keys out".into(),
            ));
        }
        self.grow(k.len() as u64 + 3)?;
        if let Some(Frame::Map { map, .. }) = self.stack.last() {
            if map.contains_key(&k) {
                return Err(self.fault(&at(&self.here(), &k), format!("duplicate key {k:?}")));
            }
        }
        if let Some(Frame::Map { key, .. }) = self.stack.last_mut() {
            *key = Some(k);
        }
        Ok(())
    }

    fn open(&mut self, mapping: bool, anchor: usize, tag: Option<&Tag>) -> Result<()> {
        if self.key_expected() {
            return Err(self.fault(
                &self.here(),
                "a key must be a string, not a mapping or a sequence".into(),
            ));
        }
        if let Some(t) = tag {
            let wanted = if mapping { "map" } else { "seq" };
            if !(t.is_yaml_core_schema() && t.suffix == wanted) {
                return Err(self.fault(
                    &self.here(),
                    format!("the tag {} is not supported", shown(t)),
                ));
            }
        }
        let depth = self.base.pointer.matches('/').count() as u64 + self.stack.len() as u64 + 1;
        let max = self.limits.max_json_depth;
        if depth > max {
            let here = self.here();
            return Err(too_large(
                here.clone(),
                &format!(
                    "{}: the manifest is nested deeper than {max} levels",
                    place(self.file, self.line, &here)
                ),
                "max_json_depth",
                max,
            ));
        }
        self.grow(2)?;
        let size_before = *self.used - 2;
        self.stack.push(if mapping {
            Frame::Map {
                map: Map::new(),
                key: None,
                anchor,
                size_before,
            }
        } else {
            let first = if self.stack.is_empty() {
                self.base.first_index
            } else {
                0
            };
            Frame::Seq {
                items: Vec::new(),
                first,
                anchor,
                size_before,
            }
        });
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        let (value, anchor, size_before) = match self.stack.pop() {
            Some(Frame::Seq {
                items,
                anchor,
                size_before,
                ..
            }) => (Value::Array(items), anchor, size_before),
            Some(Frame::Map {
                map,
                anchor,
                size_before,
                ..
            }) => (Value::Object(map), anchor, size_before),
            None => return Ok(()),
        };
        if anchor != 0 {
            let size = *self.used - size_before;
            self.anchors.insert(anchor, (value.clone(), size));
        }
        self.put(value);
        Ok(())
    }

    fn alias(&mut self, id: usize) -> Result<()> {
        if self.key_expected() {
            return Err(self.fault(&self.here(), "an alias cannot be a key".into()));
        }
        let Some(&(_, size)) = self.anchors.get(&id) else {
            return Err(self.fault(&self.here(), "an alias to a node that contains it".into()));
        };
        // Counted before it is copied: a copy past the limit is never made.
        self.grow(size)?;
        let value = self.anchors[&id].0.clone();
        self.put(value);
        Ok(())
    }
}

/// A tag as it is written (`!!binary`, `!local`).
fn shown(t: &Tag) -> String {
    if t.is_yaml_core_schema() {
        format!("!!{}", t.suffix)
    } else {
        t.to_string()
    }
}

/// A scalar under the YAML 1.2 core schema, as JSON. Quoted and block
/// scalars, and those tagged `!!str` or `!`, are strings.
fn resolve(
    text: &str,
    style: ScalarStyle,
    tag: Option<&Tag>,
) -> std::result::Result<Value, String> {
    if let Some(t) = tag {
        let is_str = (t.is_yaml_core_schema() && t.suffix == "str")
            || (t.handle == "!" && t.suffix.is_empty());
        if !is_str {
            return Err(format!(
                "the tag {} is not supported (only !!str)",
                shown(t)
            ));
        }
        return Ok(Value::String(text.to_string()));
    }
    if style != ScalarStyle::Plain {
        return Ok(Value::String(text.to_string()));
    }
    Ok(match text {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF"
        | ".nan" | ".NaN" | ".NAN" => return Err(format!("{text} is not a number JSON can hold")),
        _ => match number(text)? {
            Some(n) => Value::Number(n),
            None => Value::String(text.to_string()),
        },
    })
}

fn all_digits(s: &str, radix: u32) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_digit(radix))
}

/// A plain scalar that the core schema reads as a number, as JSON's;
/// `None` if it is a string.
fn number(text: &str) -> std::result::Result<Option<Number>, String> {
    let radix = |digits: &str, r: u32| {
        u64::from_str_radix(digits, r)
            .map(|n| Some(Number::from(n)))
            .map_err(|_| format!("{text} is too large a number"))
    };
    if let Some(d) = text.strip_prefix("0o").filter(|d| all_digits(d, 8)) {
        return radix(d, 8);
    }
    if let Some(d) = text.strip_prefix("0x").filter(|d| all_digits(d, 16)) {
        return radix(d, 16);
    }
    let (sign, rest) = match text.as_bytes().first() {
        Some(b'-') => ("-", &text[1..]),
        Some(b'+') => ("", &text[1..]),
        _ => ("", text),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    if let Some(e) = exponent {
        if !all_digits(e.strip_prefix(['+', '-']).unwrap_or(e), 10) {
            return Ok(None);
        }
    }
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let int_ok = all_digits(int, 10) || (int.is_empty() && frac.is_some_and(|f| !f.is_empty()));
    if !int_ok || frac.is_some_and(|f| !f.is_empty() && !all_digits(f, 10)) {
        return Ok(None);
    }
    if frac.is_none() && exponent.is_none() && int.len() > 1 && int.starts_with('0') {
        return Err(format!(
            "{text} has a leading zero (YAML 1.1 reads it as octal): quote it, or drop the zero"
        ));
    }
    let int = int.trim_start_matches('0');
    let mut json = format!("{sign}{}", if int.is_empty() { "0" } else { int });
    if let Some(f) = frac {
        json.push('.');
        json.push_str(if f.is_empty() { "0" } else { f });
    }
    if let Some(e) = exponent {
        json.push('e');
        json.push_str(e);
    }
    json.parse::<Number>()
        .map(Some)
        .map_err(|e| format!("{text} is not a number JSON can hold ({e})"))
}

/// The line of each of `pointers` in YAML `text` read at `base`: the line
/// of the node (of its key, for a mapping's member), or of its nearest
/// ancestor in the text (for a member that is missing). `None` if the text
/// does not read as far.
pub fn lines_of(text: &str, base: &Base<'_>, pointers: &[String]) -> Vec<Option<usize>> {
    let mut wanted: HashSet<&str> = HashSet::new();
    for p in pointers {
        let mut p = p.as_str();
        loop {
            wanted.insert(p);
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => break,
            }
        }
    }
    let mut found: HashMap<String, usize> = HashMap::new();
    // Per open node: its pointer, and for a sequence the next index or
    // for a mapping the key being read (`None` while a key is expected).
    enum Open {
        Seq(String, usize),
        Map(String, Option<String>),
    }
    let mut stack: Vec<Open> = Vec::new();
    let note = |p: &str, line: usize, found: &mut HashMap<String, usize>| {
        if wanted.contains(p) {
            found.entry(p.to_string()).or_insert(line);
        }
    };
    for event in Parser::new_from_str(text) {
        let Ok((event, span)) = event else { break };
        let line = span.start.line();
        // The pointer of a node that starts here, and whether it is a key.
        let (here, is_key) = match stack.last_mut() {
            None => (base.pointer.to_string(), false),
            Some(Open::Seq(p, i)) => (at_index(p, *i), false),
            Some(Open::Map(p, Some(k))) => (at(p, k), false),
            Some(Open::Map(p, None)) => (p.clone(), true),
        };
        let starts = matches!(
            event,
            Event::Scalar(..)
                | Event::Alias(_)
                | Event::SequenceStart(..)
                | Event::MappingStart(..)
        );
        if starts && is_key {
            if let (Event::Scalar(k, ..), Some(Open::Map(p, key))) = (&event, stack.last_mut()) {
                let member = at(p, k);
                note(&member, line, &mut found);
                *key = Some(k.to_string());
            }
            continue;
        }
        if starts {
            note(&here, line, &mut found);
            // This node fills its place in the parent.
            match stack.last_mut() {
                Some(Open::Seq(_, i)) => *i += 1,
                Some(Open::Map(_, key)) => *key = None,
                None => {}
            }
        }
        match event {
            Event::SequenceStart(..) => {
                let first = if stack.is_empty() {
                    base.first_index
                } else {
                    0
                };
                stack.push(Open::Seq(here, first));
            }
            Event::MappingStart(..) => stack.push(Open::Map(here, None)),
            Event::SequenceEnd | Event::MappingEnd => {
                stack.pop();
            }
            _ => {}
        }
    }
    pointers
        .iter()
        .map(|p| {
            let mut p = p.as_str();
            loop {
                if let Some(line) = found.get(p) {
                    return Some(*line);
                }
                p = &p[..p.rfind('/')?];
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Value> {
        parse_yaml(
            text.as_bytes(),
            "a.yaml",
            &Base::ROOT,
            &AtlasLimits::default(),
            &mut 0,
        )
    }

    #[test]
    fn scalars_follow_the_core_schema() {
        let v =
            read("a: [1.0.0, yes, on, 007x, '1', 1, -2, +3, 1.5, .5, 1e3, 0x1F, 0o17, ~, true]")
                .unwrap();
        let json = r#"{"a":["1.0.0","yes","on","007x","1",1,-2,3,1.5,0.5,1e3,31,15,null,true]}"#;
        assert_eq!(v, serde_json::from_str::<Value>(json).unwrap());
        assert!(read("a: 010").is_err());
        assert!(read("a: .nan").is_err());
    }

    #[test]
    fn anchors_expand_within_the_limit() {
        let v = read("a: &x {b: [1, 2]}\nc: *x\n").unwrap();
        assert_eq!(v["c"], v["a"]);
        let limits = AtlasLimits {
            max_manifest_bytes: 40,
            ..AtlasLimits::default()
        };
        let text = "a: &x [aaaaaaaaaa, aaaaaaaaaa]\nb: [*x, *x]\n";
        let e = parse_yaml(text.as_bytes(), "a.yaml", &Base::ROOT, &limits, &mut 0).unwrap_err();
        assert_eq!(e.path(), Some("/b/0"));
    }

    #[test]
    fn lines_of_pointers_and_of_their_parents() {
        let text = "a: 1\nb:\n  - x: 1\n    y: [2,\n      3]\n  - z\n";
        let base = Base::ROOT;
        let wanted: Vec<String> = ["/a", "/b/0/y/1", "/b/1", "/b/0/missing", "/c", ""]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let lines = lines_of(text, &base, &wanted);
        assert_eq!(
            lines,
            [Some(1), Some(5), Some(6), Some(3), Some(1), Some(1)]
        );
        let part = Base {
            pointer: "/policies",
            first_index: 4,
        };
        let lines = lines_of("- a: 1\n- b: 2\n", &part, &["/policies/5/b".to_string()]);
        assert_eq!(lines, [Some(2)]);
    }
}
