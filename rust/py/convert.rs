//! Python values to canonical JSON, written straight from the objects
//! (no intermediate tree) by the core's one canonical writer.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use crate::canonical::{
    self, push_index, push_key, write_code_points, write_f64, write_str, MAX_DEPTH,
};
use crate::error::{CoreError, Result};

use super::errors::IntoPyResult;

fn invalid(path: &str, message: String) -> CoreError {
    CoreError::invalid("INVALID_PAYLOAD", path, message)
}

/// Canonical JSON of a Python dict (a TRACE payload).
pub fn payload_to_canonical(obj: &Bound<'_, PyAny>) -> Result<Box<str>> {
    if !obj.is_instance_of::<PyDict>() {
        return Err(invalid(
            "",
            format!("a payload must be a dict, not {}", type_name(obj)),
        ));
    }
    value_to_canonical(obj)
}

/// Canonical JSON of any JSON-like Python value.
pub fn value_to_canonical(obj: &Bound<'_, PyAny>) -> Result<Box<str>> {
    let mut out = Vec::with_capacity(64);
    write_py(&mut out, obj, &mut String::new(), 0)?;
    Ok(String::from_utf8(out)
        .expect("canonical JSON is ASCII")
        .into_boxed_str())
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

fn write_py(
    out: &mut Vec<u8>,
    obj: &Bound<'_, PyAny>,
    path: &mut String,
    depth: usize,
) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(canonical::too_deep(path));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        write_py_str(out, s, path)
    } else if obj.is_none() {
        out.extend_from_slice(b"null");
        Ok(())
    } else if let Ok(b) = obj.cast::<PyBool>() {
        out.extend_from_slice(if b.is_true() { b"true" } else { b"false" });
        Ok(())
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
                    .map_err(|e| invalid(path, e.to_string()))?;
                out.extend_from_slice(text.as_bytes());
            }
        }
        Ok(())
    } else if let Ok(f) = obj.cast::<PyFloat>() {
        write_f64(out, f.value(), path)
    } else if let Ok(d) = obj.cast::<PyDict>() {
        write_dict(out, d, path, depth)
    } else if let Ok(l) = obj.cast::<PyList>() {
        write_items(out, l.iter(), path, depth)
    } else if let Ok(t) = obj.cast::<PyTuple>() {
        write_items(out, t.iter(), path, depth)
    } else {
        Err(invalid(
            path,
            format!(
                "a {} is not JSON (use dict, list, str, int, float, bool or None)",
                type_name(obj)
            ),
        ))
    }
}

fn write_items<'py>(
    out: &mut Vec<u8>,
    items: impl Iterator<Item = Bound<'py, PyAny>>,
    path: &mut String,
    depth: usize,
) -> Result<()> {
    out.push(b'[');
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let len = path.len();
        push_index(path, i);
        write_py(out, &item, path, depth + 1)?;
        path.truncate(len);
    }
    out.push(b']');
    Ok(())
}

/// A dict key as bytes that sort in code-point order (WTF-8 for lone surrogates).
fn key_bytes(key: &Bound<'_, PyString>) -> Result<Vec<u8>> {
    match key.to_cow() {
        Ok(s) => Ok(s.as_bytes().to_vec()),
        Err(_) => wtf8(key),
    }
}

fn wtf8(s: &Bound<'_, PyString>) -> Result<Vec<u8>> {
    s.call_method1("encode", ("utf-8", "surrogatepass"))
        .and_then(|b| b.extract::<Vec<u8>>())
        .map_err(|e| invalid("", e.to_string()))
}

fn write_dict(
    out: &mut Vec<u8>,
    d: &Bound<'_, PyDict>,
    path: &mut String,
    depth: usize,
) -> Result<()> {
    let mut entries = Vec::with_capacity(d.len());
    for (k, v) in d.iter() {
        let Ok(ks) = k.cast::<PyString>() else {
            return Err(invalid(
                path,
                format!("object keys must be str, not {}", type_name(&k)),
            ));
        };
        entries.push((key_bytes(ks)?, v));
    }
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    out.push(b'{');
    for (i, (k, v)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_wtf8(out, k);
        out.push(b':');
        let len = path.len();
        push_key(path, &String::from_utf8_lossy(k));
        write_py(out, v, path, depth + 1)?;
        path.truncate(len);
    }
    out.push(b'}');
    Ok(())
}

fn write_py_str(out: &mut Vec<u8>, s: &Bound<'_, PyString>, _path: &str) -> Result<()> {
    match s.to_cow() {
        Ok(text) => write_str(out, &text),
        Err(_) => write_wtf8(out, &wtf8(s)?),
    }
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
        let (cp, n) = if b0 < 0x80 {
            (b0, 1)
        } else if b0 < 0xe0 {
            (((b0 & 0x1f) << 6) | (bytes[i + 1] as u32 & 0x3f), 2)
        } else if b0 < 0xf0 {
            (
                ((b0 & 0x0f) << 12)
                    | ((bytes[i + 1] as u32 & 0x3f) << 6)
                    | (bytes[i + 2] as u32 & 0x3f),
                3,
            )
        } else {
            (
                ((b0 & 0x07) << 18)
                    | ((bytes[i + 1] as u32 & 0x3f) << 12)
                    | ((bytes[i + 2] as u32 & 0x3f) << 6)
                    | (bytes[i + 3] as u32 & 0x3f),
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
    py.detach(|| canonical::text_to_canonical(text)).py()
}
