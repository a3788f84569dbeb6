//! The core's action and agent-id patterns (Atlas §4, §5) for Python's
//! atlas tools (`cra atlas lint`), so matching is never written twice.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::atlas::pattern::Pattern;

/// Whether an action pattern (Atlas §4) matches an action id, exactly as a
/// policy's `actions` or a budget's `costs` match; `ValueError` if the
/// pattern is not a valid one.
#[pyfunction]
pub fn action_pattern_matches(pattern: &str, action_id: &str) -> PyResult<bool> {
    match Pattern::action(pattern) {
        Some(p) => Ok(p.matches(action_id)),
        None => Err(PyValueError::new_err(format!(
            "not an action pattern: {pattern:?}"
        ))),
    }
}

/// Whether an `agent_ids` condition pattern (Atlas §5: any character, `*`
/// the only wildcard) matches an agent id.
#[pyfunction]
pub fn agent_pattern_matches(pattern: &str, agent_id: &str) -> bool {
    Pattern::compile(pattern).matches(agent_id)
}
