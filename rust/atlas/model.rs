//! Atlas/1.0 as compiled: an atlas and its actions, capabilities and
//! context packs, as resolve and execute read them (built by `build`).

use std::sync::Arc;

use memchr::memmem::Finder;
use serde_json::Value;

use crate::atlas::policy::{Policy, RiskTier};

pub const DEFAULT_TTL_SECONDS: u32 = 3600;
pub const MAX_TTL_SECONDS: i64 = 86_400;

#[derive(Debug)]
pub struct Action {
    pub action_id: Arc<str>,
    pub name: Arc<str>,
    pub description: Arc<str>,
    pub parameters_schema: Option<Arc<Value>>,
    pub returns_schema: Option<Arc<Value>>,
    pub risk_tier: RiskTier,
    pub idempotent: bool,
    pub requires_confirmation: bool,
    pub executor: Option<Arc<str>>,
    /// The compiled `parameters_schema`, kept for execute.
    pub validator: Option<Arc<jsonschema::Validator>>,
    /// What the trace records of this action's parameters and result
    /// (`redact`, `trace_parameters`, `trace_result`); `None`: the
    /// defaults, hashes only.
    pub trace: Option<Arc<TraceSpec>>,
}

/// What the trace records of a value: its hash only (the default), the
/// value with the action's `redact` pointers applied, or the value as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TraceMode {
    #[default]
    Hash,
    Redacted,
    Full,
}

impl TraceMode {
    pub const NAMES: &'static [&'static str] = &["hash", "redacted", "full"];

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "hash" => Some(TraceMode::Hash),
            "redacted" => Some(TraceMode::Redacted),
            "full" => Some(TraceMode::Full),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TraceMode::Hash => "hash",
            TraceMode::Redacted => "redacted",
            TraceMode::Full => "full",
        }
    }
}

/// An action's trace settings, compiled: each `redact` pointer as its
/// unescaped reference tokens (`*` matches every member or element), and
/// what is recorded of the parameters and of the result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceSpec {
    pub redact: Vec<Vec<String>>,
    pub parameters: TraceMode,
    pub result: TraceMode,
}

#[derive(Debug)]
pub struct Capability {
    pub capability_id: Arc<str>,
    pub name: Arc<str>,
    pub description: Arc<str>,
    pub actions: Vec<Arc<str>>,
}

/// One context block as it is injected.
#[derive(Debug, Clone)]
pub struct Block {
    pub block_id: Arc<str>,
    pub content_type: Arc<str>,
    pub content: Arc<str>,
    pub token_estimate: u64,
}

#[derive(Debug)]
pub struct ContextPack {
    pub pack_id: Arc<str>,
    pub name: Arc<str>,
    pub priority: i64,
    pub blocks: Vec<Block>,
    /// Lower-cased keywords, each compiled into a substring finder at load;
    /// `None`: no keyword condition.
    pub keywords: Option<Vec<Finder<'static>>>,
    /// Bit set of risk tiers (0: no condition; see `parts::TIERS_GIVEN`).
    pub risk_tiers: u8,
    pub capabilities: Option<Vec<String>>,
}

#[derive(Debug)]
pub struct Atlas {
    pub atlas_id: Arc<str>,
    pub version: semver::Version,
    pub name: String,
    pub description: String,
    /// The merged manifest as loaded (directory parts folded in).
    pub manifest: Arc<Value>,
    pub actions: Vec<Action>,
    pub policies: Vec<Policy>,
    pub capabilities: Vec<Capability>,
    pub packs: Vec<ContextPack>,
    pub default_ttl_seconds: u32,
    pub dependencies: Vec<(String, semver::VersionReq)>,
}

impl Atlas {
    pub fn action(&self, action_id: &str) -> Option<&Action> {
        self.actions.iter().find(|a| &*a.action_id == action_id)
    }
}
