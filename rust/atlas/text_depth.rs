//! Where JSON text nests too deep, found by scanning the text (no value is
//! built): used when the parser refused a file as nested past what it
//! reads, so the error still names the place, as it does for a dict.

use crate::atlas::limits::{too_large, AtlasLimits};
use crate::error::CoreError;
use crate::json::fields::{at, at_index};

enum Frame {
    /// An object and the key of the member being read.
    Obj(Option<String>),
    /// An array and the index of the item being read.
    Arr(usize),
}

/// Where the scanned text sits in the merged manifest: `/actions` and the
/// first index for a part file, nothing for `atlas.json`.
pub struct Base<'a> {
    pub pointer: &'a str,
    pub first_index: usize,
}

impl Base<'_> {
    pub const ROOT: Base<'static> = Base {
        pointer: "",
        first_index: 0,
    };
}

fn pointer(base: &Base<'_>, stack: &[Frame]) -> String {
    let mut p = base.pointer.to_string();
    for f in stack {
        match f {
            Frame::Obj(Some(k)) => p = at(&p, k),
            Frame::Obj(None) => {}
            Frame::Arr(i) => p = at_index(&p, *i),
        }
    }
    p
}

/// Is `p` the pointer of an action's schema (`/actions/<i>/<key>`)?
fn is_schema(p: &str) -> bool {
    let Some(rest) = p.strip_prefix("/actions/") else {
        return false;
    };
    let mut parts = rest.split('/');
    matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some(i), Some("parameters_schema" | "returns_schema"), None)
            if !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit())
    )
}

/// The first container of `text` past `max_json_depth`, or past
/// `max_schema_depth` inside an action's schema, as `ATLAS_TOO_LARGE`.
/// `None` if there is none (the text is then refused for another reason).
pub fn too_deep_in(text: &[u8], base: &Base<'_>, limits: &AtlasLimits) -> Option<CoreError> {
    let base_depth = base.pointer.matches('/').count() as u64;
    let mut stack: Vec<Frame> = Vec::new();
    let mut schema_root: Option<u64> = None;
    let mut expecting_key = false;
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'"' => {
                let start = i;
                i += 1;
                while i < text.len() && text[i] != b'"' {
                    i += if text[i] == b'\\' { 2 } else { 1 };
                }
                if expecting_key {
                    if let Some(Frame::Obj(key)) = stack.last_mut() {
                        let raw = &text[start..(i + 1).min(text.len())];
                        *key = Some(
                            serde_json::from_slice::<String>(raw)
                                .unwrap_or_else(|_| String::from_utf8_lossy(raw).into_owned()),
                        );
                    }
                    expecting_key = false;
                }
            }
            open @ (b'{' | b'[') => {
                let depth = base_depth + stack.len() as u64 + 1;
                let here = pointer(base, &stack);
                if depth > limits.max_json_depth {
                    return Some(too_large(
                        here,
                        &format!(
                            "the manifest is nested deeper than {} levels",
                            limits.max_json_depth
                        ),
                        "max_json_depth",
                        limits.max_json_depth,
                    ));
                }
                match schema_root {
                    Some(root) if depth - root + 1 > limits.max_schema_depth => {
                        return Some(too_large(
                            here,
                            &format!(
                                "a schema nested deeper than {} levels",
                                limits.max_schema_depth
                            ),
                            "max_schema_depth",
                            limits.max_schema_depth,
                        ));
                    }
                    None if is_schema(&here) => schema_root = Some(depth),
                    _ => {}
                }
                if open == b'{' {
                    stack.push(Frame::Obj(None));
                    expecting_key = true;
                } else {
                    let first = if stack.is_empty() {
                        base.first_index
                    } else {
                        0
                    };
                    stack.push(Frame::Arr(first));
                }
            }
            b'}' | b']' => {
                let depth = base_depth + stack.len() as u64;
                stack.pop();
                if schema_root == Some(depth) {
                    schema_root = None;
                }
                expecting_key = false;
            }
            b',' => match stack.last_mut() {
                Some(Frame::Obj(_)) => expecting_key = true,
                Some(Frame::Arr(n)) => *n += 1,
                None => {}
            },
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_first_place_too_deep() {
        let mut s =
            String::from(r#"{"actions": [{"x": 1}, {"action_id": "a.b", "parameters_schema": "#);
        for _ in 0..200 {
            s.push_str(r#"{"not": "#);
        }
        let l = AtlasLimits::default();
        let e = too_deep_in(s.as_bytes(), &Base::ROOT, &l).unwrap();
        let p = e.path().unwrap().to_string();
        assert!(p.starts_with("/actions/1/parameters_schema/not/"), "{p}");
        assert_eq!(p.matches("/not").count(), 64);
        assert!(e.to_string().contains("max_schema_depth"));

        let deep = "[".repeat(300);
        let e = too_deep_in(deep.as_bytes(), &Base::ROOT, &l).unwrap();
        assert_eq!(e.path().unwrap().matches('/').count(), 100);
        let part = Base {
            pointer: "/policies",
            first_index: 3,
        };
        let e = too_deep_in(deep.as_bytes(), &part, &l).unwrap();
        assert!(e.path().unwrap().starts_with("/policies/3/0/0"));
        assert!(too_deep_in(br#"{"a": "[[[[", "b": [1, {"c": 2}]}"#, &Base::ROOT, &l).is_none());
    }
}
