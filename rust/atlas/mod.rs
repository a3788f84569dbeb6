//! Atlases (Atlas/1.0): the compiled model, building it from a manifest
//! (every fault at once), reading it from disk, policies and action
//! patterns, the id grammars, and the registry of loaded atlases as one
//! immutable snapshot. Knows nothing of requests or the runtime.

pub mod build;
pub mod id_grammar;
pub mod keys;
pub mod limits;
pub mod load;
pub mod model;
pub mod packs;
pub mod parts;
pub mod pattern;
pub mod policy;
pub mod registry;
pub mod text_depth;
pub mod yaml;

pub use limits::AtlasLimits;
pub use model::{Action, Atlas};
pub use policy::{Policy, RiskTier};
pub use registry::{Registry, Snapshot};
