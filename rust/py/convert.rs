//! Python values to canonical JSON, written straight from the objects (no
//! intermediate tree) by the core's one canonical writer. The happy path
//! builds no JSON pointer: the path is assembled only when a value is bad.

use std::sync::{Arc, LazyLock};

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use smallvec::SmallVec;

use crate::error::{CoreError, Result};
use crate::json::canonical::{self, write_code_points, write_f64, write_str, MAX_DEPTH};

use super::cache::IdentityCache;
use super::errors::IntoPyResult;
use super::utf8;

/// A bad value: the message, and the path segments from the value up.
struct Bad {
    segments: Vec<String>,
    message: String,
}

type Walk = std::result::Result<(), Bad>;

fn bad(message: String) -> Bad {
    Bad {
        segments: Vec::new(),
        message,
    }
}

fn within(seg: impl FnOnce() -> String, r: Walk) -> Walk {
    r.map_err(|mut b| {
        b.segments.push(seg());
        b
    })
}

impl Bad {
    fn into_error(self) -> CoreError {
        let mut path = String::new();
        for seg in self.segments.iter().rev() {
            canonical::push_key(&mut path, seg);
        }
        CoreError::invalid("INVALID_PAYLOAD", path, self.message)
    }
}

/// A dict key: bytes that sort in code-point order, and its JSON text.
struct Key {
    sort: Box<[u8]>,
    json: Box<[u8]>,
}

static KEYS: LazyLock<IdentityCache<Arc<Key>>> = LazyLock::new(IdentityCache::default);

fn key(s: &Bound<'_, PyString>) -> std::result::Result<Arc<Key>, Bad> {
    if let Some(k) = KEYS.get(s) {
        return Ok(k);
    }
    let sort: Vec<u8> = match utf8::text(s) {
        Ok(text) => text.as_bytes().to_vec(),
        Err(_) => wtf8(s)?,
    };
    let mut json = Vec::with_capacity(sort.len() + 2);
    write_wtf8(&mut json, &sort);
    let k = Arc::new(Key {
        sort: sort.into(),
        json: json.into(),
    });
    KEYS.put(s, Arc::clone(&k));
    Ok(k)
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Canonical JSON of a Python dict (a TRACE payload).
pub fn payload_to_canonical(obj: &Bound<'_, PyAny>) -> Result<Box<str>> {
    if !obj.is_instance_of::<PyDict>() {
        return Err(CoreError::invalid(
            "INVALID_PAYLOAD",
            "",
            format!("a payload must be a dict, not {}", type_name(obj)),
        ));
    }
    value_to_canonical(obj)
}

/// Canonical JSON of any JSON-like Python value.
pub fn value_to_canonical(obj: &Bound<'_, PyAny>) -> Result<Box<str>> {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(256));
    }
    BUF.with(|cell| {
        // A nested call (a __repr__ that records) gets a buffer of its own.
        let mut fresh = Vec::new();
        let mut guard = cell.try_borrow_mut().ok();
        let out = guard.as_deref_mut().unwrap_or(&mut fresh);
        out.clear();
        write_py(out, obj, 0).map_err(Bad::into_error)?;
        let text = std::str::from_utf8(out).expect("canonical JSON is ASCII");
        Ok(Box::from(text))
    })
}

fn write_py(out: &mut Vec<u8>, obj: &Bound<'_, PyAny>, depth: usize) -> Walk {
    if depth > MAX_DEPTH {
        return Err(bad(canonical::too_deep("").message()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        match utf8::text(s) {
            Ok(text) => write_str(out, &text),
            Err(_) => write_wtf8(out, &wtf8(s)?),
        }
    } else if obj.is_none() {
        out.extend_from_slice(b"null");
    } else if let Ok(b) = obj.cast::<PyBool>() {
        out.extend_from_slice(if b.is_true() { b"true" } else { b"false" });
    } else if obj.is_instance_of::<PyInt>() {
        match obj.extract::<i64>() {
            Ok(i) => out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes()),
            Err(_) => {
                // Big (or subclassed) ints: int.__repr__ gives every digit.
                let text = obj
                    .py()
                    .get_type::<PyInt>()
                    .call_method1("__repr__", (obj,))
                    .and_then(|r| r.extract::<String>())
                    .map_err(|e| bad(e.to_string()))?;
                out.extend_from_slice(text.as_bytes());
            }
        }
    } else if let Ok(f) = obj.cast::<PyFloat>() {
        write_f64(out, f.value(), "").map_err(|e| bad(e.message()))?;
    } else if let Ok(d) = obj.cast::<PyDict>() {
        write_dict(out, d, depth)?;
    } else if let Ok(l) = obj.cast::<PyList>() {
        write_items(out, l.iter(), depth)?;
    } else if let Ok(t) = obj.cast::<PyTuple>() {
        write_items(out, t.iter(), depth)?;
    } else {
        return Err(bad(format!(
            "a {} is not JSON (use dict, list, str, int, float, bool or None)",
            type_name(obj)
        )));
    }
    Ok(())
}

fn write_items<'py>(
    out: &mut Vec<u8>,
    items: impl Iterator<Item = Bound<'py, PyAny>>,
    depth: usize,
) -> Walk {
    out.push(b'[');
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        within(|| i.to_string(), write_py(out, &item, depth + 1))?;
    }
    out.push(b']');
    Ok(())
}

fn wtf8(s: &Bound<'_, PyString>) -> std::result::Result<Vec<u8>, Bad> {
    s.call_method1("encode", ("utf-8", "surrogatepass"))
        .and_then(|b| b.extract::<Vec<u8>>())
        .map_err(|e| bad(e.to_string()))
}

fn write_dict(out: &mut Vec<u8>, d: &Bound<'_, PyDict>, depth: usize) -> Walk {
    let mut entries: SmallVec<[(Arc<Key>, Bound<'_, PyAny>); 8]> = SmallVec::with_capacity(d.len());
    for (k, v) in d.iter() {
        let Ok(ks) = k.cast::<PyString>() else {
            return Err(bad(format!(
                "object keys must be str, not {}",
                type_name(&k)
            )));
        };
        entries.push((key(ks)?, v));
    }
    if entries.len() > 1 {
        entries.sort_unstable_by(|a, b| a.0.sort.cmp(&b.0.sort));
    }
    out.push(b'{');
    for (i, (k, v)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&k.json);
        out.push(b':');
        within(
            || String::from_utf8_lossy(&k.sort).into_owned(),
            write_py(out, v, depth + 1),
        )?;
    }
    out.push(b'}');
    Ok(())
}

/// Writes UTF-8 (or WTF-8, which may hold lone surrogates) as a JSON string.
fn write_wtf8(out: &mut Vec<u8>, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(s) => write_str(out, s),
        Err(_) => write_code_points(out, decode_wtf8(bytes)),
    }
}

fn decode_wtf8(bytes: &[u8]) -> impl Iterator<Item = u32> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        let b0 = *bytes.get(i)? as u32;
        let at = |k: usize| bytes.get(i + k).map_or(0, |&b| b as u32 & 0x3f);
        let (cp, n) = if b0 < 0x80 {
            (b0, 1)
        } else if b0 < 0xe0 {
            (((b0 & 0x1f) << 6) | at(1), 2)
        } else if b0 < 0xf0 {
            (((b0 & 0x0f) << 12) | (at(1) << 6) | at(2), 3)
        } else {
            (
                ((b0 & 0x07) << 18) | (at(1) << 12) | (at(2) << 6) | at(3),
                4,
            )
        };
        i += n;
        Some(cp)
    })
}

/// The canonical JSON text of a value (what TRACE hashes).
#[pyfunction]
pub fn canonical_json(value: &Bound<'_, PyAny>) -> PyResult<String> {
    value_to_canonical(value).map(String::from).py()
}

/// Canonical JSON of a JSON document given as text (parsed by the core).
#[pyfunction]
pub fn canonical_json_text(py: Python<'_>, text: &str) -> PyResult<String> {
    // The core's own reader: keeps lone surrogates and nests as deep as
    // `canonical_json` allows (serde_json::Value can do neither).
    py.detach(|| canonical::text::text_to_canonical(text)).py()
}
