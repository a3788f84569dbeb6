//! Policies: the five types, their conditions and parameters, compiled.

use std::sync::Arc;

use crate::atlas::pattern::Pattern;

/// Risk tiers, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RiskTier {
    Low,
    Medium,
    High,
    Critical,
}

impl RiskTier {
    pub fn parse(s: &str) -> Option<RiskTier> {
        match s {
            "low" => Some(RiskTier::Low),
            "medium" => Some(RiskTier::Medium),
            "high" => Some(RiskTier::High),
            "critical" => Some(RiskTier::Critical),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RiskTier::Low => "low",
            RiskTier::Medium => "medium",
            RiskTier::High => "high",
            RiskTier::Critical => "critical",
        }
    }

    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// Policy types in the order resolve checks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PolicyType {
    Deny,
    RequireApproval,
    RateLimit,
    Budget,
    Allow,
}

impl PolicyType {
    pub fn parse(s: &str) -> Option<PolicyType> {
        match s {
            "deny" => Some(PolicyType::Deny),
            "require_approval" => Some(PolicyType::RequireApproval),
            "rate_limit" => Some(PolicyType::RateLimit),
            "budget" => Some(PolicyType::Budget),
            "allow" => Some(PolicyType::Allow),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PolicyType::Deny => "deny",
            PolicyType::RequireApproval => "require_approval",
            PolicyType::RateLimit => "rate_limit",
            PolicyType::Budget => "budget",
            PolicyType::Allow => "allow",
        }
    }
}

/// Whose executions a rate limit or budget counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    Session,
    Agent,
    Global,
}

impl Scope {
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "session" => Some(Scope::Session),
            "agent" => Some(Scope::Agent),
            "global" => Some(Scope::Global),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Session => "session",
            Scope::Agent => "agent",
            Scope::Global => "global",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Limit {
    None,
    Rate {
        max_calls: u64,
        window_micros: i64,
        window_seconds: f64,
        scope: Scope,
    },
    Budget {
        limit: f64,
        costs: Vec<(Pattern, f64)>,
        scope: Scope,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub policy_id: Arc<str>,
    pub atlas_id: Arc<str>,
    /// `atlas_id/policy_id`: the key of its counters.
    pub key: Arc<str>,
    pub kind: PolicyType,
    /// `None`: every action.
    pub patterns: Option<Vec<Pattern>>,
    /// Bit set of risk tiers (0: no condition; with `TIERS_GIVEN` alone, an
    /// empty list: never holds).
    pub risk_tiers: u8,
    pub agent_ids: Option<Vec<Pattern>>,
    pub limit: Limit,
    pub reason: Arc<str>,
    pub priority: i64,
    /// Parameters as written (canonical JSON), for constraints.
    pub parameters_json: Arc<str>,
}

impl Policy {
    pub fn matches_action(&self, action_id: &str) -> bool {
        self.patterns
            .as_ref()
            .is_none_or(|ps| ps.iter().any(|p| p.matches(action_id)))
    }

    /// Do the conditions hold for this requester?
    #[inline]
    pub fn conditions_hold(&self, risk: RiskTier, agent_id: &str) -> bool {
        (self.risk_tiers == 0 || self.risk_tiers & risk.bit() != 0)
            && self
                .agent_ids
                .as_ref()
                .is_none_or(|ps| ps.iter().any(|p| p.matches(agent_id)))
    }

    /// The cost of one execution of `action_id` under a budget.
    pub fn cost_of(&self, action_id: &str) -> f64 {
        match &self.limit {
            Limit::Budget { costs, .. } => costs
                .iter()
                .find(|(p, _)| p.matches(action_id))
                .map(|(_, c)| *c)
                .unwrap_or(1.0),
            _ => 0.0,
        }
    }
}
