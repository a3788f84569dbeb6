//! Action patterns: an action id in which `*` matches any run of
//! characters, dots included. Compiled once, at load time.

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// `*`
    Any,
    /// No `*`: the id itself.
    Exact(String),
    /// `prefix*`
    Prefix(String),
    /// `*suffix`
    Suffix(String),
    /// Anything else: the literal pieces between the stars.
    Glob {
        text: String,
        pieces: Vec<String>,
        anchored_start: bool,
        anchored_end: bool,
    },
}

impl Pattern {
    /// Compiles a policy's action pattern; `None` if it is not a valid one
    /// (dot-separated segments of `a-z 0-9 _ *`, no empty segment).
    pub fn action(text: &str) -> Option<Pattern> {
        let valid = !text.is_empty()
            && text.split('.').all(|seg| {
                !seg.is_empty()
                    && seg.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'*'
                    })
            });
        valid.then(|| Pattern::compile(text))
    }

    /// Compiles any text pattern (used for agent ids, where any character goes).
    pub fn compile(text: &str) -> Pattern {
        let stars = text.matches('*').count();
        if stars == 0 {
            return Pattern::Exact(text.to_string());
        }
        if text.bytes().all(|b| b == b'*') {
            return Pattern::Any;
        }
        if stars == 1 && text.ends_with('*') {
            return Pattern::Prefix(text[..text.len() - 1].to_string());
        }
        if stars == 1 && text.starts_with('*') {
            return Pattern::Suffix(text[1..].to_string());
        }
        Pattern::Glob {
            text: text.to_string(),
            pieces: text
                .split('*')
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect(),
            anchored_start: !text.starts_with('*'),
            anchored_end: !text.ends_with('*'),
        }
    }

    pub fn matches(&self, id: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Exact(s) => id == s,
            Pattern::Prefix(p) => id.starts_with(p.as_str()),
            Pattern::Suffix(s) => id.ends_with(s.as_str()),
            Pattern::Glob {
                pieces,
                anchored_start,
                anchored_end,
                ..
            } => glob_match(id, pieces, *anchored_start, *anchored_end),
        }
    }
}

fn glob_match(id: &str, pieces: &[String], anchored_start: bool, anchored_end: bool) -> bool {
    let mut rest = id;
    let last = pieces.len().saturating_sub(1);
    for (i, piece) in pieces.iter().enumerate() {
        if i == 0 && anchored_start {
            match rest.strip_prefix(piece.as_str()) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == last && anchored_end {
            return rest.len() >= piece.len() && rest.ends_with(piece.as_str());
        } else {
            match rest.find(piece.as_str()) {
                Some(at) => rest = &rest[at + piece.len()..],
                None => return false,
            }
        }
    }
    !anchored_end || rest.is_empty() || pieces.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, id: &str) -> bool {
        Pattern::action(p).expect("valid").matches(id)
    }

    #[test]
    fn the_protocol_examples() {
        assert!(m("*", "a.b"));
        assert!(m("resource.*", "resource.get"));
        assert!(m("resource.*", "resource.a.b"));
        assert!(!m("resource.*", "resources.get"));
        assert!(m("*.delete", "a.delete"));
        assert!(m("*.delete", "a.b.delete"));
        assert!(!m("*.delete", "a.undelete"));
        assert!(!m("*.delete", "undelete"));
        assert!(m("api.*.write", "api.x.write"));
        assert!(m("api.*.write", "api.x.y.write"));
        assert!(!m("api.*.write", "api.write"));
        assert!(!m("api.*.write", "api.x.writer"));
        assert!(m("ticket.lookup", "ticket.lookup"));
        assert!(!m("ticket.lookup", "ticket.lookups"));
        assert!(m("a*b*c", "aXbYc"));
        assert!(!m("a*b*c", "aXbYcd"));
        assert!(m("a.*.b.*", "a.x.b.y"));
        assert!(m("*a*", "xay"));
    }

    #[test]
    fn invalid_patterns() {
        for bad in [
            "",
            "Resource.get",
            "a..b",
            ".a",
            "a.",
            "a?b",
            "a b",
            "[a]",
            "a/b",
        ] {
            assert!(Pattern::action(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn overlapping_pieces_at_the_end() {
        // The last piece must match at the very end, not just somewhere.
        assert!(m("*ab*ab", "abab"));
        assert!(!m("a*aa", "aa"));
        assert!(m("a*aa", "aaa"));
    }
}
