//! CARP requests read straight from Python dicts: the core's request rules
//! (`request::parse_request_from`) run on the objects through a JSON view,
//! so a valid request is checked without first copying it into a
//! `serde_json` tree. Only the free-form subtrees (`context`, execution
//! `parameters`) are converted.

use std::borrow::Cow;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::{Arc, LazyLock};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::Value;
use smallvec::SmallVec;

use crate::json_view::{Kind, Node, Obj};
use crate::request::{parse_request_from, CarpRequest, KEY_NAMES};

use super::cache::{IdentityCache, Lookup};
use super::utf8;
use super::value::to_value_at;

/// The text of string objects that requests carry again and again (the
/// version, the operation, a session's agent id, session id and goal):
/// read once, then found by the object's identity. Ids and timestamps
/// that differ in every request are read each time and never cached.
static TEXTS: LazyLock<IdentityCache<Arc<str>>> = LazyLock::new(IdentityCache::default);

/// The text of a Python string in a request.
pub enum PyText<'py> {
    Shared(Arc<str>),
    /// Borrowed from the string object, which it keeps alive.
    Held(Bound<'py, PyString>, NonNull<str>),
    Owned(String),
}

impl Deref for PyText<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            PyText::Shared(s) => s,
            // SAFETY: the text is the held object's own UTF-8, which lives
            // (unchanged: a `str` is immutable) as long as the object.
            PyText::Held(_, s) => unsafe { s.as_ref() },
            PyText::Owned(s) => s,
        }
    }
}

impl From<PyText<'_>> for Arc<str> {
    fn from(t: PyText<'_>) -> Arc<str> {
        match t {
            PyText::Shared(s) => s,
            other => Arc::from(&*other),
        }
    }
}

fn text_of<'py>(s: &Bound<'py, PyString>) -> Option<PyText<'py>> {
    match TEXTS.get_or_admit(s) {
        Lookup::Hit(text) => Some(PyText::Shared(text)),
        Lookup::Miss { admit: false } => match utf8::text(s).ok()? {
            Cow::Borrowed(b) => Some(PyText::Held(s.clone(), NonNull::from(b))),
            Cow::Owned(o) => Some(PyText::Owned(o)),
        },
        Lookup::Miss { admit: true } => {
            let text: Arc<str> = Arc::from(&*utf8::text(s).ok()?);
            TEXTS.put(s, Arc::clone(&text));
            Some(PyText::Shared(text))
        }
    }
}

/// Depth of the deepest free-form subtree of a request (execution
/// parameters); subtrees are converted as if that deep, so the direct path
/// never accepts what the general path would refuse as too deep.
const SUBTREE_DEPTH: usize = 2;

/// Each request key name with its interned Python string: a key written
/// as a literal in Python source is that very object.
static NAMES: PyOnceLock<Vec<(&'static str, Py<PyString>)>> = PyOnceLock::new();

fn names(py: Python<'_>) -> &[(&'static str, Py<PyString>)] {
    NAMES.get_or_init(py, || {
        KEY_NAMES
            .iter()
            .flat_map(|group| group.iter())
            .map(|k| (*k, PyString::intern(py, k).unbind()))
            .collect()
    })
}

/// The request name a dict key stands for, if any.
fn name_of(py: Python<'_>, key: &Bound<'_, PyAny>) -> Result<&'static str, Option<String>> {
    let names = names(py);
    if let Some((n, _)) = names.iter().find(|(_, s)| s.is(key)) {
        return Ok(n);
    }
    let key = key.cast::<PyString>().map_err(|_| None)?;
    let text = utf8::text(key).map_err(|_| None)?;
    match names.iter().find(|(n, _)| *n == text) {
        Some((n, _)) => Ok(n),
        None => Err(Some(text.into_owned())),
    }
}

/// A dict read once: its request keys with their values, and the keys
/// that are not request keys at all.
pub struct PyObj<'py> {
    entries: SmallVec<[(&'static str, Bound<'py, PyAny>); 9]>,
    strangers: Vec<Option<String>>,
}

impl<'py> Node for Bound<'py, PyAny> {
    type Obj = PyObj<'py>;
    type Str = PyText<'py>;

    fn kind(&self) -> Kind {
        if self.is_instance_of::<PyString>() {
            Kind::String
        } else if self.is_none() {
            Kind::Null
        } else if self.is_instance_of::<PyBool>() {
            Kind::Bool
        } else if self.is_instance_of::<PyInt>() || self.is_instance_of::<PyFloat>() {
            Kind::Number
        } else if self.is_instance_of::<PyDict>() {
            Kind::Object
        } else if self.is_instance_of::<PyList>() || self.is_instance_of::<PyTuple>() {
            Kind::Array
        } else {
            Kind::Other
        }
    }

    fn object(&self) -> Option<PyObj<'py>> {
        let dict = self.cast::<PyDict>().ok()?;
        let py = self.py();
        let mut obj = PyObj {
            entries: SmallVec::new(),
            strangers: Vec::new(),
        };
        for (k, v) in dict.iter() {
            match name_of(py, &k) {
                Ok(name) => obj.entries.push((name, v)),
                Err(text) => obj.strangers.push(text),
            }
        }
        Some(obj)
    }

    fn string(&self) -> Option<PyText<'py>> {
        text_of(self.cast::<PyString>().ok()?)
    }

    fn items(&self) -> Option<Vec<Self>> {
        if let Ok(l) = self.cast::<PyList>() {
            return Some(l.iter().collect());
        }
        self.cast::<PyTuple>().ok().map(|t| t.iter().collect())
    }

    fn to_json(&self) -> Option<Value> {
        to_value_at(self, "INVALID_REQUEST", SUBTREE_DEPTH).ok()
    }
}

impl<'py> Obj for PyObj<'py> {
    type Node = Bound<'py, PyAny>;

    fn get(&self, key: &str) -> Option<Bound<'py, PyAny>> {
        let first = key.as_bytes().first();
        self.entries
            .iter()
            .find(|(n, _)| n.len() == key.len() && n.as_bytes().first() == first && *n == key)
            .map(|(_, v)| v.clone())
    }

    fn other_keys(&self, allowed: &[&str], mut f: impl FnMut(&str)) {
        // `allowed` is one of the request's static name lists, and entry
        // names come from the same lists: comparing addresses is enough,
        // with the text as the fallback.
        for (name, _) in &self.entries {
            let listed = allowed
                .iter()
                .any(|a| std::ptr::eq(a.as_ptr(), name.as_ptr()) || a == name);
            if !listed {
                f(name);
            }
        }
        for text in &self.strangers {
            f(text.as_deref().unwrap_or("(a key that is not a string)"));
        }
    }
}

/// The request parsed straight from the objects, or `None` when it is not
/// a valid request: the caller then takes the general path (convert, then
/// parse), which reports every fault exactly as for JSON input.
pub(super) fn parse_direct(request: &Bound<'_, PyAny>) -> Option<CarpRequest> {
    parse_request_from(request.clone()).ok()
}
