//! The protocol's id grammars.

use std::sync::LazyLock;

use regex::Regex;

static ATLAS_ID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z][a-z0-9]*(\.[a-z][a-z0-9-]*)+$").expect("regex"));
static ACTION_ID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$").expect("regex"));
static PLAIN_ID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9][a-z0-9._-]*$").expect("regex"));

/// Reverse-domain atlas id, e.g. `com.example.support`.
pub fn is_atlas_id(s: &str) -> bool {
    ATLAS_ID.is_match(s)
}

/// Dot-separated action id, e.g. `ticket.lookup`.
pub fn is_action_id(s: &str) -> bool {
    ACTION_ID.is_match(s)
}

/// Capability, policy and pack ids.
pub fn is_plain_id(s: &str) -> bool {
    PLAIN_ID.is_match(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammars() {
        assert!(is_atlas_id("com.example.support"));
        assert!(is_atlas_id("com.example.my-atlas"));
        assert!(!is_atlas_id("InvalidID"));
        assert!(!is_atlas_id("example"));
        assert!(!is_atlas_id("com.Example"));
        assert!(is_action_id("ticket.lookup"));
        assert!(is_action_id("a.b_c.d1"));
        assert!(!is_action_id("ticket"));
        assert!(!is_action_id("ticket.Lookup"));
        assert!(!is_action_id("ticket.look-up"));
        assert!(is_plain_id("allow-read"));
        assert!(is_plain_id("0.x_y-z"));
        assert!(!is_plain_id(""));
        assert!(!is_plain_id("-a"));
        assert!(!is_plain_id("Allow"));
    }
}
