//! JSON: the one canonical writer (and its reader of JSON text), a
//! read-only view over JSON-like trees, and field readers that collect
//! every fault with its JSON pointer. Knows nothing of traces or CARP.

pub mod canonical;
pub mod fields;
pub mod view;

pub use canonical::{to_canonical, write_str};
pub use fields::Faults;
pub use view::{Node, Obj};
