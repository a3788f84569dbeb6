//! CARP requests read straight from Python dicts: the core's request rules
//! (`carp::request::parse_request_from`) run on the objects through a JSON view,
//! so a valid request is checked without first copying it into a
//! `serde_json` tree. Only the free-form subtrees (`context`, execution
//! `parameters`) are converted.

use std::borrow::Cow;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::{Arc, LazyLock};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use pyo3::Borrowed;
use serde_json::Value;
use smallvec::SmallVec;
use uuid::Uuid;

use crate::carp::request::{parse_request_from, CarpRequest, KEY_NAMES};
use crate::json::view::{Kind, Node, Obj, Text};

use super::cache::{IdentityCache, Lookup};
use super::utf8;
use super::value::to_value_at;

/// The text of string objects that requests carry again and again (the
/// version, the operation, a session's agent id, session id and goal):
/// read once, then found by the object's identity. Ids and timestamps
/// that differ in every request are read each time and never cached.
static TEXTS: LazyLock<IdentityCache<Known>> = LazyLock::new(IdentityCache::default);

/// A recurring string's text, and its UUID if it is one (a session id).
#[derive(Clone)]
pub struct Known {
    text: Arc<str>,
    uuid: Option<Uuid>,
}

/// The text of a Python string in a request.
pub enum PyText<'py> {
    Shared(Known),
    /// Borrowed from the string object, which it keeps alive.
    Held(Bound<'py, PyString>, NonNull<str>),
    Owned(String),
}

impl Deref for PyText<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            PyText::Shared(k) => &k.text,
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
            PyText::Shared(k) => k.text,
            other => Arc::from(&*other),
        }
    }
}

impl Text for PyText<'_> {
    fn uuid(&self) -> Option<Uuid> {
        match self {
            PyText::Shared(k) => k.uuid,
            other => Uuid::try_parse(other).ok(),
        }
    }
}

fn text_of<'py>(s: &Bound<'py, PyString>) -> Option<PyText<'py>> {
    match TEXTS.get_or_admit(s) {
        Lookup::Hit(known) => Some(PyText::Shared(known)),
        Lookup::Miss { admit: false } => match utf8::text(s).ok()? {
            Cow::Borrowed(b) => Some(PyText::Held(s.clone(), NonNull::from(b))),
            Cow::Owned(o) => Some(PyText::Owned(o)),
        },
        Lookup::Miss { admit: true } => {
            let text: Arc<str> = Arc::from(&*utf8::text(s).ok()?);
            let uuid = Uuid::try_parse(&text).ok();
            let known = Known { text, uuid };
            TEXTS.put(s, known.clone());
            Some(PyText::Shared(known))
        }
    }
}

/// Depth of the deepest free-form subtree of a request (execution
/// parameters); subtrees are converted as if that deep, so the direct path
/// never accepts what the general path would refuse as too deep.
const SUBTREE_DEPTH: usize = 2;

/// The request's key names with their interned Python strings (a key
/// written as a literal in Python source is that very object), and a
/// table from such a string's address to its name.
struct Names {
    list: Vec<(Name, Py<PyString>)>,
    /// Open addressing on the address (0: empty); the index into `list`.
    by_address: [(usize, u8); ADDRESS_SLOTS],
}

const ADDRESS_SLOTS: usize = 64;

fn address_slot(address: usize) -> usize {
    (address >> 4).wrapping_mul(0x9E37_79B9) >> 8 & (ADDRESS_SLOTS - 1)
}

impl Names {
    fn new(py: Python<'_>) -> Self {
        let list: Vec<(Name, Py<PyString>)> = KEY_NAMES
            .iter()
            .enumerate()
            .flat_map(|(group, names)| names.iter().map(move |k| (*k, group as u8)))
            .map(|(text, group)| (Name { text, group }, PyString::intern(py, text).unbind()))
            .collect();
        let mut by_address = [(0, 0); ADDRESS_SLOTS];
        for (i, (_, s)) in list.iter().enumerate() {
            let address = s.as_ptr() as usize;
            let mut at = address_slot(address);
            while by_address[at].0 != 0 {
                at = (at + 1) % ADDRESS_SLOTS;
            }
            by_address[at] = (address, i as u8);
        }
        Names { list, by_address }
    }

    /// The name whose interned string `key` is.
    #[inline]
    fn by_identity(&self, key: *mut pyo3::ffi::PyObject) -> Option<Name> {
        let address = key as usize;
        let mut at = address_slot(address);
        loop {
            match self.by_address[at] {
                (0, _) => return None,
                (a, i) if a == address => return Some(self.list[i as usize].0),
                _ => at = (at + 1) % ADDRESS_SLOTS,
            }
        }
    }

    /// The request name a dict key stands for, if any; else the key's
    /// text (`None` when it is not a readable string).
    fn name_of(&self, key: &Bound<'_, PyAny>) -> Result<Name, Option<String>> {
        if let Some(n) = self.by_identity(key.as_ptr()) {
            return Ok(n);
        }
        let key = key.cast::<PyString>().map_err(|_| None)?;
        let text = utf8::text(key).map_err(|_| None)?;
        match self.list.iter().find(|(n, _)| n.text == text) {
            Some((n, _)) => Ok(*n),
            None => Err(Some(text.into_owned())),
        }
    }
}

static NAMES: PyOnceLock<Names> = PyOnceLock::new();

/// A request key name and the index of its group in `KEY_NAMES`.
#[derive(Clone, Copy)]
struct Name {
    text: &'static str,
    group: u8,
}

/// A dict read once: its request keys with their values, and the keys
/// that are not request keys at all.
pub struct PyObj<'py> {
    entries: SmallVec<[(Name, Bound<'py, PyAny>); 9]>,
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
        let names = NAMES.get_or_init(py, || Names::new(py));
        let mut obj = PyObj {
            entries: SmallVec::new(),
            strangers: Vec::new(),
        };
        let (mut pos, mut k, mut v) = (0, std::ptr::null_mut(), std::ptr::null_mut());
        // SAFETY: `PyDict_Next` lends the dict's own references, valid while
        // the dict is unchanged: nothing in this loop runs Python code (keys
        // are only compared and read as text), and each value kept becomes
        // a new reference.
        while unsafe { ffi::PyDict_Next(dict.as_ptr(), &mut pos, &mut k, &mut v) } != 0 {
            let key = unsafe { Borrowed::from_ptr(py, k) };
            match names.name_of(&key) {
                Ok(name) => obj
                    .entries
                    .push((name, unsafe { Bound::from_borrowed_ptr(py, v) })),
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
            .map(|(n, v)| (n.text, v))
            .find(|(n, _)| n.len() == key.len() && n.as_bytes().first() == first && *n == key)
            .map(|(_, v)| v.clone())
    }

    fn other_keys(&self, allowed: &[&str], mut f: impl FnMut(&str)) {
        // `allowed` is one of the request's name groups: an entry named
        // from that group is listed, others are compared by text.
        let group = KEY_NAMES.iter().position(|g| std::ptr::eq(*g, allowed));
        for (name, _) in &self.entries {
            let listed = group == Some(name.group as usize) || allowed.contains(&name.text);
            if !listed {
                f(name.text);
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
