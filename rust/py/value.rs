//! Python values to `serde_json::Value` (for requests, atlases, parameters).

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyMapping, PyString, PyTuple};
use serde_json::{Map, Number, Value};

use crate::error::{CoreError, Result};
use crate::json::canonical::{too_deep, At, MAX_DEPTH};

use super::utf8;

fn invalid(code: &'static str, at: &At<'_>, message: String) -> CoreError {
    CoreError::invalid(code, at.pointer(), message)
}

/// Converts a JSON-like Python value; `code` names the error for bad input.
pub fn to_value(obj: &Bound<'_, PyAny>, code: &'static str) -> Result<Value> {
    convert(obj, &At::Root, 0, code)
}

/// As `to_value`, for a subtree that sits `depth` levels below its
/// document's root (so the depth limit counts from the root).
pub fn to_value_at(obj: &Bound<'_, PyAny>, code: &'static str, depth: usize) -> Result<Value> {
    convert(obj, &At::Root, depth, code)
}

fn convert(obj: &Bound<'_, PyAny>, at: &At<'_>, depth: usize, code: &'static str) -> Result<Value> {
    if depth > MAX_DEPTH {
        // Named by the caller's code (a request or an atlas that is too deep).
        let deep = too_deep("");
        return Err(invalid(code, at, deep.message()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        let text = utf8::text(s)
            .map_err(|e| invalid(code, at, format!("string is not valid Unicode: {e}")))?;
        return Ok(Value::String(text.into_owned()));
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Value::Number(i.into()));
        }
        let text: String = obj
            .py()
            .get_type::<PyInt>()
            .call_method1("__repr__", (obj,))
            .and_then(|r| r.extract())
            .map_err(|e| invalid(code, at, e.to_string()))?;
        return serde_json::from_str(&text).map_err(|e| invalid(code, at, e.to_string()));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Number::from_f64(f.value())
            .map(Value::Number)
            .ok_or_else(|| invalid(code, at, format!("{} is not valid JSON", f.value())));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        return object(d.iter(), at, depth, code);
    }
    let items: Option<Vec<Bound<'_, PyAny>>> = if let Ok(l) = obj.cast::<PyList>() {
        Some(l.iter().collect())
    } else {
        obj.cast::<PyTuple>().ok().map(|t| t.iter().collect())
    };
    if let Some(items) = items {
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            out.push(convert(item, &At::Index(at, i), depth + 1, code)?);
        }
        return Ok(Value::Array(out));
    }
    // Any other Mapping (a MappingProxyType, a custom Mapping) reads like a dict.
    if let Ok(m) = obj.cast::<PyMapping>() {
        let pairs = m
            .items()
            .and_then(|items| {
                items
                    .iter()
                    .map(|kv| kv.extract::<(Bound<'_, PyAny>, Bound<'_, PyAny>)>())
                    .collect::<PyResult<Vec<_>>>()
            })
            .map_err(|e| invalid(code, at, format!("cannot read the mapping: {e}")))?;
        return object(pairs.into_iter(), at, depth, code);
    }
    let name = obj
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default();
    Err(invalid(code, at, format!("a {name} is not JSON")))
}

/// A JSON object from `(key, value)` pairs; keys must be strings.
fn object<'py>(
    pairs: impl Iterator<Item = (Bound<'py, PyAny>, Bound<'py, PyAny>)>,
    at: &At<'_>,
    depth: usize,
    code: &'static str,
) -> Result<Value> {
    let mut m = Map::with_capacity(pairs.size_hint().0);
    for (k, v) in pairs {
        let Ok(ks) = k.cast::<PyString>() else {
            return Err(invalid(code, at, "object keys must be strings".into()));
        };
        let key = utf8::text(ks)
            .map_err(|e| invalid(code, at, e.to_string()))?
            .into_owned();
        let value = convert(&v, &At::Key(at, &key), depth + 1, code)?;
        m.insert(key, value);
    }
    Ok(Value::Object(m))
}
