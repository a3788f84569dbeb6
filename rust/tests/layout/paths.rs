//! Paths of this crate in Rust source: a small lexer (comments, strings,
//! character literals and lifetimes dropped), inline `mod` blocks, every
//! `crate::`, `super::`, `self::` and child-module path with its `{…}`
//! groups, and the file each path names.

use std::collections::BTreeMap;

/// Tokens with their line numbers.
pub type Tokens = Vec<(Tok, usize)>;

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Ident(String),
    /// `::`
    Path,
    Punct(char),
}

/// Tokens with their line numbers; comments, strings and character
/// literals are dropped, lifetimes and labels too.
pub fn lex(text: &str) -> Tokens {
    let c: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    let ident_start = |ch: char| ch.is_alphabetic() || ch == '_';
    let ident_char = |ch: char| ch.is_alphanumeric() || ch == '_';
    while i < c.len() {
        let ch = c[i];
        let next = c.get(i + 1).copied();
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && next == Some('/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && next == Some('*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if c[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if let Some(end) = raw_string_end(&c, i) {
            line += c[i..end].iter().filter(|&&x| x == '\n').count();
            i = end;
        } else if ch == '"' || (ch == 'b' && next == Some('"')) {
            i += if ch == 'b' { 2 } else { 1 };
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    i += 1;
                }
                if c.get(i) == Some(&'\n') {
                    line += 1;
                }
                i += 1;
            }
            i += 1;
        } else if ch == '\'' || (ch == 'b' && next == Some('\'')) {
            let q = if ch == 'b' { i + 1 } else { i };
            if c.get(q + 1) == Some(&'\\') {
                // An escaped character literal.
                i = q + 2;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if c.get(q + 2) == Some(&'\'') {
                i = q + 3;
            } else {
                // A lifetime or a label.
                i = q + 1;
                while i < c.len() && ident_char(c[i]) {
                    i += 1;
                }
            }
        } else if ch == 'r' && next == Some('#') && c.get(i + 2).is_some_and(|&x| ident_start(x)) {
            let start = i + 2;
            i = start;
            while i < c.len() && ident_char(c[i]) {
                i += 1;
            }
            out.push((Tok::Ident(c[start..i].iter().collect()), line));
        } else if ident_start(ch) {
            let start = i;
            while i < c.len() && ident_char(c[i]) {
                i += 1;
            }
            out.push((Tok::Ident(c[start..i].iter().collect()), line));
        } else if ch.is_ascii_digit() {
            while i < c.len() && (ident_char(c[i]) || c[i] == '.') {
                // `1.0`, `0x1f`, `1_000u64`; `1..2` ends at the range.
                if c[i] == '.' && c.get(i + 1) == Some(&'.') {
                    break;
                }
                i += 1;
            }
        } else if ch == ':' && next == Some(':') {
            out.push((Tok::Path, line));
            i += 2;
        } else {
            out.push((Tok::Punct(ch), line));
            i += 1;
        }
    }
    out
}

/// Where a raw string starting at `i` (`r"…"`, `r#"…"#`, `br"…"`) ends.
fn raw_string_end(c: &[char], i: usize) -> Option<usize> {
    if i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_') {
        return None;
    }
    let mut j = i;
    if c.get(j) == Some(&'b') {
        j += 1;
    }
    if c.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let mut hashes = 0;
    while c.get(j) == Some(&'#') {
        hashes += 1;
        j += 1;
    }
    if c.get(j) != Some(&'"') {
        return None;
    }
    j += 1;
    while j < c.len() {
        if c[j] == '"' && (1..=hashes).all(|k| c.get(j + k) == Some(&'#')) {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(c.len())
}

/// One path found in a file: where, the module it was written in, and its
/// segments (a `{…}` group gives one path per member).
pub struct Found {
    pub line: usize,
    pub module: Vec<String>,
    pub segments: Vec<String>,
}

/// Inline `mod name { … }` blocks of a file, as module paths.
pub fn inline_modules(module: &[String], toks: &[(Tok, usize)]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    walk(module, toks, |m, _, _| {
        if !out.contains(&m.to_vec()) && m.len() > module.len() {
            out.push(m.to_vec());
        }
    });
    out
}

/// Calls `at(current module, token index, tokens)` for every token, with
/// inline `mod` blocks tracked.
fn walk(
    module: &[String],
    toks: &[(Tok, usize)],
    mut at: impl FnMut(&[String], usize, &[(Tok, usize)]),
) {
    let mut current = module.to_vec();
    let mut open: Vec<usize> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < toks.len() {
        match &toks[i].0 {
            Tok::Ident(k) if k == "mod" => {
                if let (Some((Tok::Ident(name), _)), Some((Tok::Punct('{'), _))) =
                    (toks.get(i + 1), toks.get(i + 2))
                {
                    depth += 1;
                    open.push(depth);
                    current.push(name.clone());
                    at(&current, i, toks);
                    i += 3;
                    continue;
                }
            }
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                if open.last() == Some(&depth) {
                    open.pop();
                    current.pop();
                }
                depth = depth.saturating_sub(1);
            }
            _ => {}
        }
        at(&current, i, toks);
        i += 1;
    }
}

/// Every path of this crate written in a file (`crate::`, `super::`,
/// `self::`, or a child module of where it is written).
pub fn paths_of(
    module: &[String],
    toks: &[(Tok, usize)],
    known: &BTreeMap<Vec<String>, String>,
) -> Vec<Found> {
    let mut out = Vec::new();
    walk(module, toks, |current, i, toks| {
        let Tok::Ident(first) = &toks[i].0 else {
            return;
        };
        if toks.get(i + 1).map(|t| &t.0) != Some(&Tok::Path) {
            return;
        }
        // The start of a path, not a later segment or a field.
        if i > 0 && matches!(toks[i - 1].0, Tok::Path | Tok::Punct('.')) {
            return;
        }
        let child = [current, std::slice::from_ref(first)].concat();
        let ours =
            matches!(first.as_str(), "crate" | "super" | "self") || known.contains_key(&child);
        if !ours {
            return;
        }
        let mut paths = Vec::new();
        tree(toks, i, Vec::new(), &mut paths);
        for segments in paths {
            out.push(Found {
                line: toks[i].1,
                module: current.to_vec(),
                segments,
            });
        }
    });
    out
}

/// The paths of a (use) tree starting at token `i`, after `prefix`.
fn tree(
    toks: &[(Tok, usize)],
    mut i: usize,
    prefix: Vec<String>,
    out: &mut Vec<Vec<String>>,
) -> usize {
    let mut segs = prefix;
    loop {
        match toks.get(i).map(|t| &t.0) {
            Some(Tok::Ident(s)) => {
                segs.push(s.clone());
                i += 1;
            }
            Some(Tok::Punct('{')) => {
                i += 1;
                loop {
                    match toks.get(i).map(|t| &t.0) {
                        Some(Tok::Punct('}')) | None => return i + 1,
                        Some(Tok::Punct(',')) => i += 1,
                        _ => {
                            let before = i;
                            i = tree(toks, i, segs.clone(), out);
                            // `as name` after a member.
                            while let Some(Tok::Ident(_)) = toks.get(i).map(|t| &t.0) {
                                i += 1;
                            }
                            if i == before {
                                i += 1;
                            }
                        }
                    }
                }
            }
            _ => {
                out.push(segs);
                return i;
            }
        }
        if toks.get(i).map(|t| &t.0) == Some(&Tok::Path) {
            i += 1;
        } else {
            out.push(segs);
            return i;
        }
    }
}

/// The file a path names: that of the deepest known module it reaches.
pub fn resolve(found: &Found, known: &BTreeMap<Vec<String>, String>) -> Option<String> {
    let mut segs = found.segments.iter().peekable();
    let mut m: Vec<String> = match segs.peek().map(|s| s.as_str()) {
        Some("crate") => {
            segs.next();
            Vec::new()
        }
        _ => found.module.clone(),
    };
    for s in segs {
        match s.as_str() {
            "self" => {}
            "super" => {
                m.pop()?;
            }
            _ => {
                let mut deeper = m.clone();
                deeper.push(s.clone());
                if known.contains_key(&deeper) {
                    m = deeper;
                } else {
                    break;
                }
            }
        }
    }
    known.get(&m).cloned()
}
