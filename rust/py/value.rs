//! Python values to `serde_json::Value` (for requests, atlases, parameters).

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyMapping, PyString, PyTuple};
use serde_json::{Map, Number, Value};

use crate::atlas::limits::{too_large, AtlasLimits};
use crate::error::{CoreError, Result};
use crate::json::canonical::{too_deep, At, MAX_DEPTH};

use super::utf8;

fn invalid(code: &'static str, at: &At<'_>, message: String) -> CoreError {
    CoreError::invalid(code, at.pointer(), message)
}

/// How a conversion names its faults and how deep it goes.
#[derive(Clone, Copy)]
struct Opts {
    /// The error code of input that is not JSON.
    code: &'static str,
    /// Containers may nest this many levels (the root is level 1); the
    /// first one deeper is refused before it is read.
    max_depth: usize,
    /// The error of a container past `max_depth`.
    too_deep: fn(&str, usize) -> CoreError,
    /// Containers may nest this many levels inside an action's schema
    /// (`/actions/<i>/parameters_schema` or `returns_schema`); `None`: not
    /// an atlas.
    max_schema_depth: Option<usize>,
}

/// Is `at` an action's schema?
fn is_schema(at: &At<'_>) -> bool {
    matches!(
        at,
        At::Key(
            At::Index(At::Key(At::Root, "actions"), _),
            "parameters_schema" | "returns_schema"
        )
    )
}

fn generic_too_deep(_: &str, _: usize) -> CoreError {
    too_deep("")
}

fn atlas_too_deep(pointer: &str, max: usize) -> CoreError {
    too_large(
        pointer,
        &format!("the manifest is nested deeper than {max} levels"),
        "max_json_depth",
        max as u64,
    )
}

/// Converts a JSON-like Python value; `code` names the error for bad input.
pub fn to_value(obj: &Bound<'_, PyAny>, code: &'static str) -> Result<Value> {
    convert(obj, &At::Root, 0, plain(code), None)
}

fn plain(code: &'static str) -> Opts {
    Opts {
        code,
        max_depth: MAX_DEPTH + 1,
        too_deep: generic_too_deep,
        max_schema_depth: None,
    }
}

/// An atlas manifest given as a dict: `ATLAS_INVALID` if it is not JSON,
/// `ATLAS_TOO_LARGE` at the first container nested deeper than
/// `limits.max_json_depth` (found while converting, so a hostile dict never
/// becomes a deep `Value`); the other limits are checked on the result.
pub fn atlas_to_value(obj: &Bound<'_, PyAny>, limits: &AtlasLimits) -> Result<Value> {
    let opts = Opts {
        code: "ATLAS_INVALID",
        max_depth: limits.max_json_depth.min(MAX_DEPTH as u64) as usize,
        too_deep: atlas_too_deep,
        max_schema_depth: Some(limits.max_schema_depth.min(MAX_DEPTH as u64) as usize),
    };
    convert(obj, &At::Root, 0, opts, None)
}

/// As `to_value`, for a subtree that sits `depth` levels below its
/// document's root (so the depth limit counts from the root).
pub fn to_value_at(obj: &Bound<'_, PyAny>, code: &'static str, depth: usize) -> Result<Value> {
    convert(obj, &At::Root, depth, plain(code), None)
}

/// `depth`: how many containers hold `obj`; `schema`: the depth of the
/// action schema `obj` is inside of, if any.
fn convert(
    obj: &Bound<'_, PyAny>,
    at: &At<'_>,
    depth: usize,
    opts: Opts,
    schema: Option<usize>,
) -> Result<Value> {
    let code = opts.code;
    if depth > MAX_DEPTH {
        // Named by the caller's code (a request or an atlas that is too deep).
        let deep = (opts.too_deep)("", opts.max_depth);
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
    let schema = match (schema, opts.max_schema_depth) {
        (None, Some(_)) if depth == 3 && is_schema(at) => Some(depth),
        (s, _) => s,
    };
    let container = |depth: usize| -> Result<()> {
        if let (Some(root), Some(max)) = (schema, opts.max_schema_depth) {
            if depth - root + 1 > max {
                return Err(too_large(
                    at.pointer(),
                    &format!("a schema nested deeper than {max} levels"),
                    "max_schema_depth",
                    max as u64,
                ));
            }
        }
        if depth + 1 > opts.max_depth {
            return Err((opts.too_deep)(&at.pointer(), opts.max_depth));
        }
        Ok(())
    };
    if let Ok(d) = obj.cast::<PyDict>() {
        container(depth)?;
        return object(d.iter(), at, depth, opts, schema);
    }
    let items: Option<Vec<Bound<'_, PyAny>>> = if let Ok(l) = obj.cast::<PyList>() {
        Some(l.iter().collect())
    } else {
        obj.cast::<PyTuple>().ok().map(|t| t.iter().collect())
    };
    if let Some(items) = items {
        container(depth)?;
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            out.push(convert(item, &At::Index(at, i), depth + 1, opts, schema)?);
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
        container(depth)?;
        return object(pairs.into_iter(), at, depth, opts, schema);
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
    opts: Opts,
    schema: Option<usize>,
) -> Result<Value> {
    let code = opts.code;
    let mut m = Map::with_capacity(pairs.size_hint().0);
    for (k, v) in pairs {
        let Ok(ks) = k.cast::<PyString>() else {
            return Err(invalid(code, at, "object keys must be strings".into()));
        };
        let key = utf8::text(ks)
            .map_err(|e| invalid(code, at, e.to_string()))?
            .into_owned();
        let value = convert(&v, &At::Key(at, &key), depth + 1, opts, schema)?;
        m.insert(key, value);
    }
    Ok(Value::Object(m))
}
