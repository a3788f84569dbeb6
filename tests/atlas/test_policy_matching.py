"""Which policies apply to an action (§4.3): action patterns (absent, empty,
several, wildcards) and the conditions on risk tier and agent ids, each of
which must hold for a policy to count.
"""

from __future__ import annotations

import cra
import pytest
from resolve_helpers import (
    ACT,
    AGENTS,
    action,
    decided_by,
    outcome,
    policy,
    request,
    resolve_one,
)

# -- patterns ---------------------------------------------------------------------

PATTERN_ACTIONS = [
    "a.delete",
    "a.b.delete",
    "a.undelete",
    "undelete.x",
    "resource.get",
    "resource.a.b",
    "resources.get",
    "api.x.write",
    "api.x.y.write",
    "api.write",
    "api.x.writer",
    "ticket.lookup",
    "ticket.lookups",
]


PATTERNS = {
    "*": PATTERN_ACTIONS,
    "*.delete": ["a.delete", "a.b.delete"],
    "resource.*": ["resource.get", "resource.a.b"],
    "api.*.write": ["api.x.write", "api.x.y.write"],
    "ticket.lookup": ["ticket.lookup"],
    "*.*": PATTERN_ACTIONS,
    "a.*delete": ["a.delete", "a.b.delete", "a.undelete"],
    "*lookup*": ["ticket.lookup", "ticket.lookups"],
}


@pytest.mark.parametrize("pattern", sorted(PATTERNS))
def test_patterns(pattern: str) -> None:
    res = resolve_one([policy("p", "allow", [pattern])], [action(a) for a in PATTERN_ACTIONS])
    assert res.allowed_action_ids == PATTERNS[pattern]


def test_absent_actions_means_every_action() -> None:
    res = resolve_one([policy("p", "allow")], [action(a) for a in PATTERN_ACTIONS])
    assert res.allowed_action_ids == PATTERN_ACTIONS


def test_empty_actions_list_matches_nothing() -> None:
    """Code's choice: `actions: []` is a policy that names no action."""
    res = resolve_one([policy("p", "allow", [])], ACT)
    assert outcome(res, "doc.read")[1] == "default-deny"


def test_any_of_several_patterns_matches() -> None:
    res = resolve_one(
        [policy("p", "allow", ["x.*", "doc.read"])],
        [action("doc.read"), action("doc.write"), action("x.y")],
    )
    assert res.allowed_action_ids == ["doc.read", "x.y"]


# -- conditions -------------------------------------------------------------------


@pytest.mark.parametrize(
    "tier, applies",
    [(None, False), ("low", False), ("medium", False), ("high", True), ("critical", True)],
)
def test_risk_tier_condition(tier: str | None, applies: bool) -> None:
    res = resolve_one(
        [
            policy("risky", "deny", conditions={"risk_tiers": ["high", "critical"]}),
            policy("ok", "allow"),
        ],
        ACT,
        risk_tier=tier,
    )
    assert outcome(res, "doc.read")[0] == ("deny" if applies else "allow")


@pytest.mark.parametrize("tier", [None, "low", "medium", "high", "critical"])
def test_an_empty_risk_tiers_names_no_tier_so_never_holds(tier: str | None) -> None:
    # Like an empty agent_ids: the condition is given and nothing is in it.
    res = resolve_one(
        [policy("never", "deny", conditions={"risk_tiers": []}), policy("ok", "allow")],
        ACT,
        risk_tier=tier,
    )
    assert outcome(res, "doc.read")[0] == "allow"


def test_risk_tier_condition_low_matches_the_default() -> None:
    res = resolve_one(
        [
            policy("careful", "require_approval", conditions={"risk_tiers": ["low"]}),
            policy("ok", "allow"),
        ],
        ACT,
    )
    assert outcome(res, "doc.read")[0] == "requires_approval"


@pytest.mark.parametrize(
    "agent, applies",
    [
        ("intern-7", True),
        ("intern-", True),
        ("senior-intern-7", False),
        ("ops", True),
        ("ops-2", False),
        ("build-bot", True),
        ("lead-1", False),
    ],
)
def test_agent_ids_condition_uses_patterns(agent: str, applies: bool) -> None:
    res = resolve_one(
        [
            policy("no-juniors", "deny", conditions={"agent_ids": ["intern-*", "ops", "*-bot"]}),
            policy("ok", "allow"),
        ],
        ACT,
        agent_id=agent,
    )
    assert outcome(res, "doc.read")[0] == ("deny" if applies else "allow")


def test_agent_ids_patterns_take_any_character() -> None:
    res = resolve_one(
        [policy("team", "allow", conditions={"agent_ids": ["Team/Alpha:*"]})],
        ACT,
        agent_id="Team/Alpha:42",
    )
    assert outcome(res, "doc.read")[0] == "allow"


@pytest.mark.parametrize(
    "agent, tier, applies",
    [("intern-1", "high", True), ("intern-1", "low", False), ("lead-1", "high", False)],
)
def test_all_condition_keys_must_hold(agent: str, tier: str, applies: bool) -> None:
    res = resolve_one(
        [
            policy(
                "both",
                "deny",
                conditions={"agent_ids": ["intern-*"], "risk_tiers": ["high"]},
            ),
            policy("ok", "allow"),
        ],
        ACT,
        agent_id=agent,
        risk_tier=tier,
    )
    assert outcome(res, "doc.read")[0] == ("deny" if applies else "allow")


def test_agents_conformance_atlas(rt: cra.Runtime) -> None:
    rt.load_atlas(AGENTS)
    intern = rt.create_session("intern-7", "Work")
    lead = rt.create_session("lead-1", "Work")
    assert decided_by(rt.resolve(request(rt, intern))) == {"release.deploy": "no-interns"}
    assert rt.resolve(request(rt, lead)).allowed_action_ids == ["release.deploy"]


def test_condition_that_does_not_hold_lets_a_lower_type_decide() -> None:
    res = resolve_one(
        [
            policy("no-high", "deny", conditions={"risk_tiers": ["high"]}),
            policy("ask-medium", "require_approval", conditions={"risk_tiers": ["medium"]}),
            policy("ok", "allow"),
        ],
        ACT,
        risk_tier="medium",
    )
    assert outcome(res, "doc.read")[0] == "requires_approval"
