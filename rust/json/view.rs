//! A read-only view of a JSON-like document, so that one validator can run
//! on a parsed `serde_json` tree or straight on a foreign object tree (the
//! Python glue reads dicts through it) without building a tree first.

use std::ops::Deref;
use std::sync::Arc;

use serde_json::{Map, Value};
use uuid::Uuid;

/// What a node is, for type checks and fault messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
    /// Something that is not JSON at all (only foreign trees have these).
    Other,
}

impl Kind {
    /// The kind with its article, as fault messages name it.
    pub fn described(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Bool => "a boolean",
            Kind::Number => "a number",
            Kind::String => "a string",
            Kind::Array => "an array",
            Kind::Object => "an object",
            Kind::Other => "not JSON",
        }
    }
}

/// The text of a string node.
pub trait Text: Deref<Target = str> + Into<Arc<str>> {
    /// The text as a UUID (any version), if it is one; a view that has
    /// read the same text before may know it already.
    fn uuid(&self) -> Option<Uuid> {
        Uuid::try_parse(self).ok()
    }
}

impl Text for &str {}

/// A value in a JSON-like tree.
pub trait Node: Sized + Clone {
    type Obj: Obj<Node = Self>;
    /// Text that becomes shared (`Arc<str>`) without a copy where it can.
    type Str: Text;

    fn kind(&self) -> Kind;
    fn object(&self) -> Option<Self::Obj>;
    /// The text of a string node; `None` for other kinds (and for strings
    /// that are not valid Unicode).
    fn string(&self) -> Option<Self::Str>;
    fn items(&self) -> Option<Vec<Self>>;
    /// The node as an owned JSON value; `None` if it is not JSON.
    fn to_json(&self) -> Option<Value>;

    fn is_null(&self) -> bool {
        self.kind() == Kind::Null
    }
}

/// An object (string keys) in a JSON-like tree.
pub trait Obj {
    type Node: Node;

    fn get(&self, key: &str) -> Option<Self::Node>;
    /// Calls `f` with each key that is not in `allowed` (a key that is not
    /// a string is passed as its description).
    fn other_keys(&self, allowed: &[&str], f: impl FnMut(&str));
}

impl<O: Obj> Obj for &O {
    type Node = O::Node;

    fn get(&self, key: &str) -> Option<O::Node> {
        (**self).get(key)
    }

    fn other_keys(&self, allowed: &[&str], f: impl FnMut(&str)) {
        (**self).other_keys(allowed, f)
    }
}

impl<'v> Node for &'v Value {
    type Obj = &'v Map<String, Value>;
    type Str = &'v str;

    fn kind(&self) -> Kind {
        match self {
            Value::Null => Kind::Null,
            Value::Bool(_) => Kind::Bool,
            Value::Number(_) => Kind::Number,
            Value::String(_) => Kind::String,
            Value::Array(_) => Kind::Array,
            Value::Object(_) => Kind::Object,
        }
    }

    fn object(&self) -> Option<&'v Map<String, Value>> {
        self.as_object()
    }

    fn string(&self) -> Option<&'v str> {
        self.as_str()
    }

    fn items(&self) -> Option<Vec<&'v Value>> {
        self.as_array().map(|a| a.iter().collect())
    }

    fn to_json(&self) -> Option<Value> {
        Some((*self).clone())
    }
}

impl<'v> Obj for &'v Map<String, Value> {
    type Node = &'v Value;

    fn get(&self, key: &str) -> Option<&'v Value> {
        Map::get(self, key)
    }

    fn other_keys(&self, allowed: &[&str], mut f: impl FnMut(&str)) {
        for key in self.keys() {
            if !allowed.contains(&key.as_str()) {
                f(key);
            }
        }
    }
}
