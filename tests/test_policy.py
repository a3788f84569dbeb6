"""The decision rules of CARP resolve (§4.3 to §4.5): policy type order,
priorities and ties, patterns, conditions, constraints, confirmation and
approval ids, decision types and reasons."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import cra
import pytest
from resolve_helpers import (
    AGENTS,
    GUARD,
    PAYMENTS,
    RESOURCES,
    action,
    brief,
    decided_by,
    make_atlas,
    new_session,
    policy,
    request,
    resolve_one,
)

ACT = [action("doc.read")]
EXHAUSTED_BUDGET = {"limit": 0}


@pytest.fixture
def rt() -> Iterator[cra.Runtime]:
    runtime = cra.Runtime()
    yield runtime
    runtime.close(timeout=10)


def outcome(res: cra.CARPResolution, action_id: str) -> tuple[str, str | None, str | None]:
    """(allow | requires_approval | deny, policy id if denied, reason if denied)."""
    for d in res.denied_actions:
        if d.action_id == action_id:
            return ("deny", d.policy_id, d.reason)
    for a in res.allowed_actions:
        if a.action_id == action_id:
            return ("requires_approval" if a.requires_confirmation else "allow", None, None)
    raise AssertionError(f"{action_id} is not a candidate")


def evaluated(rt: cra.Runtime, sid: str) -> dict[str, dict[str, Any]]:
    """action id -> payload of its latest policy.evaluated event."""
    return {
        e["payload"]["action_id"]: e["payload"]
        for e in brief(rt, sid)
        if e["event_type"] == "policy.evaluated"
    }


# -- the order of types ---------------------------------------------------------

ORDER_CASES = [
    # (policies in declaration order, expected outcome of doc.read, deciding id)
    ([policy("ok", "allow"), policy("no", "deny")], ("deny", "no", "Denied by policy no")),
    (
        [policy("ok", "allow", priority=1000), policy("no", "deny", priority=-5)],
        ("deny", "no", "Denied by policy no"),
    ),
    (
        [policy("ask", "require_approval"), policy("no", "deny")],
        ("deny", "no", "Denied by policy no"),
    ),
    ([policy("ok", "allow"), policy("ask", "require_approval")], ("requires_approval", None, None)),
    (
        [policy("ok", "allow"), policy("cash", "budget", parameters=EXHAUSTED_BUDGET)],
        ("deny", "cash", "budget_exceeded"),
    ),
    (
        [policy("cash", "budget", parameters=EXHAUSTED_BUDGET), policy("ask", "require_approval")],
        ("requires_approval", None, None),
    ),
    (
        [
            policy("cash", "budget", parameters=EXHAUSTED_BUDGET),
            policy("no", "deny", reason="never"),
        ],
        ("deny", "no", "never"),
    ),
    (
        [
            policy("ok", "allow"),
            policy("rate", "rate_limit", parameters={"max_calls": 1, "window_seconds": 60}),
        ],
        ("allow", None, None),
    ),
    ([policy("ok", "allow")], ("allow", None, None)),
    ([], ("deny", "default-deny", "No policy allows this action")),
    (
        [policy("rate", "rate_limit", parameters={"max_calls": 1, "window_seconds": 60})],
        ("deny", "default-deny", "No policy allows this action"),
    ),
    (
        [policy("cash", "budget", parameters={"limit": 10})],
        ("deny", "default-deny", "No policy allows this action"),
    ),
    (
        [policy("other", "allow", ["doc.write"])],
        ("deny", "default-deny", "No policy allows this action"),
    ),
]


@pytest.mark.parametrize("policies, expected", ORDER_CASES)
def test_type_order(policies: list[dict[str, Any]], expected: tuple[str, Any, Any]) -> None:
    res = resolve_one(policies, ACT)
    assert outcome(res, "doc.read") == expected


def test_policy_evaluated_names_the_deciding_policy(rt: cra.Runtime) -> None:
    rt.load_atlas(
        make_atlas(
            actions=[
                action("doc.read"),
                action("doc.write"),
                action("doc.delete"),
                action("doc.pay"),
                action("doc.x"),
            ],
            policies=[
                policy("allow-docs", "allow", ["doc.*"]),
                policy("ask-write", "require_approval", ["doc.write"]),
                policy("no-delete", "deny", ["doc.delete"], reason="never"),
                policy("no-money", "budget", ["doc.pay"], parameters=EXHAUSTED_BUDGET),
                policy("no-x", "deny", ["doc.x"]),
            ],
        )
    )
    sid = new_session(rt)
    rt.resolve(request(rt, sid))
    assert evaluated(rt, sid) == {
        "doc.read": {"action_id": "doc.read", "policy_id": "allow-docs", "result": "allow"},
        "doc.write": {
            "action_id": "doc.write",
            "policy_id": "ask-write",
            "result": "requires_approval",
        },
        "doc.delete": {
            "action_id": "doc.delete",
            "policy_id": "no-delete",
            "result": "deny",
            "reason": "never",
        },
        "doc.pay": {
            "action_id": "doc.pay",
            "policy_id": "no-money",
            "result": "deny",
            "reason": "budget_exceeded",
        },
        "doc.x": {
            "action_id": "doc.x",
            "policy_id": "no-x",
            "result": "deny",
            "reason": "Denied by policy no-x",
        },
    }


# -- priorities and ties ---------------------------------------------------------


def test_priority_within_a_type_higher_first() -> None:
    res = resolve_one(
        [
            policy("low", "deny", reason="low", priority=1),
            policy("high", "deny", ["doc.*"], reason="high", priority=50),
            policy("tie", "deny", reason="tie", priority=50),
            policy("negative", "deny", reason="negative", priority=-100),
        ],
        ACT,
    )
    assert outcome(res, "doc.read") == ("deny", "high", "high")


def test_ties_keep_declaration_order() -> None:
    res = resolve_one(
        [policy("first", "deny", reason="first"), policy("second", "deny", reason="second")], ACT
    )
    assert outcome(res, "doc.read") == ("deny", "first", "first")
    res = resolve_one(
        [policy("second", "deny", reason="second"), policy("first", "deny", reason="first")], ACT
    )
    assert outcome(res, "doc.read") == ("deny", "second", "second")


def test_default_priority_is_zero() -> None:
    res = resolve_one(
        [
            policy("unset", "deny", reason="unset"),
            policy("zero", "deny", reason="zero", priority=0),
        ],
        ACT,
    )
    assert outcome(res, "doc.read")[1] == "unset"
    res = resolve_one(
        [policy("unset", "deny", reason="unset"), policy("one", "deny", reason="one", priority=1)],
        ACT,
    )
    assert outcome(res, "doc.read")[1] == "one"


HOME = make_atlas(
    "org.test.home",
    actions=[action("doc.read")],
    policies=[policy("home-deny", "deny", ["doc.read"], reason="home")],
)
AWAY = make_atlas("org.test.away", policies=[policy("away-deny", "deny", ["doc.*"], reason="away")])


@pytest.mark.parametrize(
    "order, winner",
    [((HOME, AWAY), "home-deny"), ((AWAY, HOME), "away-deny")],
    ids=["home-first", "away-first"],
)
def test_ties_across_atlases_follow_load_order(
    rt: cra.Runtime, order: Sequence[dict[str, Any]], winner: str
) -> None:
    for atlas in order:
        rt.load_atlas(atlas)
    sid = new_session(rt)
    assert decided_by(rt.resolve(request(rt, sid))) == {"doc.read": winner}


def test_priority_beats_load_order_across_atlases(rt: cra.Runtime) -> None:
    rt.load_atlas(HOME)
    away = make_atlas(
        "org.test.away", policies=[policy("away-deny", "deny", ["doc.*"], priority=5)]
    )
    rt.load_atlas(away)
    sid = new_session(rt)
    assert decided_by(rt.resolve(request(rt, sid))) == {"doc.read": "away-deny"}


def test_replace_keeps_the_load_position(rt: cra.Runtime) -> None:
    """Code's choice: a replaced atlas keeps its place in the load order."""
    rt.load_atlas(HOME)
    rt.load_atlas(AWAY)
    rt.load_atlas(HOME, replace=True)
    assert [a.atlas_id for a in rt.atlases()] == ["org.test.home", "org.test.away"]
    sid = new_session(rt)
    assert decided_by(rt.resolve(request(rt, sid))) == {"doc.read": "home-deny"}


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
        [policy("p", "allow", ["x.*", "doc.read"])], [action("doc.read"), action("doc.write")]
    )
    assert res.allowed_action_ids == ["doc.read"]


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


# -- rate limits, budgets and constraints -------------------------------------------


def test_open_rate_limit_adds_a_constraint_and_evaluation_continues() -> None:
    res = resolve_one(
        [
            policy(
                "slow", "rate_limit", ["doc.*"], parameters={"max_calls": 2, "window_seconds": 60}
            ),
            policy("ok", "allow"),
        ],
        [action("doc.read"), action("doc.write")],
    )
    assert res.decision.type == "allow"
    assert [(c.constraint_id, c.type, c.parameters) for c in res.constraints] == [
        ("slow", "rate_limit", {"max_calls": 2, "window_seconds": 60})
    ]
    assert [a.rate_limit for a in res.allowed_actions] == [
        {"max_calls": 2, "window_seconds": 60},
        {"max_calls": 2, "window_seconds": 60},
    ]


def test_open_budget_adds_a_constraint_and_evaluation_continues() -> None:
    params = {"limit": 10, "costs": {"doc.write": 3}, "scope": "agent"}
    res = resolve_one(
        [policy("spend", "budget", parameters=params), policy("ok", "allow", ["doc.read"])],
        [action("doc.read"), action("doc.write")],
    )
    assert outcome(res, "doc.read")[0] == "allow"
    # The budget did not decide doc.write: nothing allows it, so default deny.
    assert outcome(res, "doc.write")[1] == "default-deny"
    assert [(c.constraint_id, c.type, c.parameters) for c in res.constraints] == [
        ("spend", "budget", params)
    ]
    assert [a.rate_limit for a in res.allowed_actions] == [None]


def test_budget_costs_by_pattern() -> None:
    res = resolve_one(
        [
            policy(
                "spend", "budget", parameters={"limit": 5, "costs": {"doc.big*": 10, "doc.*": 2}}
            ),
            policy("ok", "allow"),
        ],
        [action("doc.bigone"), action("doc.small"), action("other.thing")],
    )
    assert outcome(res, "doc.bigone") == ("deny", "spend", "budget_exceeded")
    assert outcome(res, "doc.small")[0] == "allow"
    assert outcome(res, "other.thing")[0] == "allow"


def test_budget_with_zero_limit_is_already_spent() -> None:
    """Code's choice: a budget whose limit is below one execution's cost is spent."""
    res = resolve_one(
        [policy("broke", "budget", parameters={"limit": 0}), policy("ok", "allow")], ACT
    )
    assert outcome(res, "doc.read") == ("deny", "broke", "budget_exceeded")
    assert res.decision.reason == "budget_exceeded"
    assert [(c.constraint_id, c.type) for c in res.constraints] == [("broke", "budget")]


def test_require_approval_constraint() -> None:
    res = resolve_one(
        [
            policy("ask", "require_approval", ["doc.write"], reason="a human looks"),
            policy("ok", "allow"),
        ],
        [action("doc.read"), action("doc.write")],
    )
    assert [(c.constraint_id, c.type, c.parameters) for c in res.constraints] == [
        ("ask", "require_approval", {})
    ]


def test_constraints_appear_once_in_first_use_order() -> None:
    res = resolve_one(
        [
            policy("ok", "allow"),
            policy(
                "b-slow",
                "rate_limit",
                ["doc.write"],
                parameters={"max_calls": 1, "window_seconds": 1},
            ),
            policy("a-slow", "rate_limit", parameters={"max_calls": 9, "window_seconds": 9}),
            policy("cash", "budget", parameters={"limit": 100}),
            policy("no-delete", "deny", ["doc.delete"]),
        ],
        [action("doc.read"), action("doc.write"), action("doc.delete")],
    )
    assert [c.constraint_id for c in res.constraints] == ["a-slow", "cash", "b-slow"]


def test_rate_limit_field_is_the_first_matching_rate_limit() -> None:
    res = resolve_one(
        [
            policy("loose", "rate_limit", parameters={"max_calls": 50, "window_seconds": 60}),
            policy(
                "tight",
                "rate_limit",
                ["doc.write"],
                parameters={"max_calls": 2, "window_seconds": 0.5},
                priority=10,
            ),
            policy("ok", "allow"),
        ],
        [action("doc.read"), action("doc.write")],
    )
    by_id = {a.action_id: a.rate_limit for a in res.allowed_actions}
    assert by_id == {
        "doc.read": {"max_calls": 50, "window_seconds": 60},
        "doc.write": {"max_calls": 2, "window_seconds": 0.5},
    }
    as_json = {a["action_id"]: a["rate_limit"] for a in res.to_dict()["allowed_actions"]}
    assert as_json == by_id
    assert isinstance(as_json["doc.read"]["window_seconds"], int)


def test_rate_limit_ties_keep_declaration_order() -> None:
    res = resolve_one(
        [
            policy("first", "rate_limit", parameters={"max_calls": 1, "window_seconds": 1}),
            policy("second", "rate_limit", parameters={"max_calls": 2, "window_seconds": 2}),
            policy("ok", "allow"),
        ],
        ACT,
    )
    assert res.allowed_actions[0].rate_limit == {"max_calls": 1, "window_seconds": 1}


def test_no_rate_limit_key_without_a_rate_limit() -> None:
    res = resolve_one([policy("ok", "allow")], ACT)
    assert res.allowed_actions[0].rate_limit is None
    assert "rate_limit" not in res.to_dict()["allowed_actions"][0]


def test_rate_limit_field_of_an_action_needing_approval() -> None:
    """§4.4: an allowed entry's `rate_limit` is that of the first matching
    rate_limit policy, also when the action needs approval (the limit holds
    once it is approved)."""
    res = resolve_one(
        [
            policy("ask", "require_approval"),
            policy("slow", "rate_limit", parameters={"max_calls": 3, "window_seconds": 60}),
            policy("ok", "allow"),
        ],
        ACT,
    )
    entry = res.allowed_actions[0]
    assert entry.requires_confirmation is True
    assert entry.rate_limit == {"max_calls": 3, "window_seconds": 60}
    assert [(c.constraint_id, c.type) for c in res.constraints] == [
        ("ask", "require_approval"),
        ("slow", "rate_limit"),
    ]


def test_rate_limit_condition_must_hold_to_count() -> None:
    res = resolve_one(
        [
            policy(
                "slow-high",
                "rate_limit",
                parameters={"max_calls": 1, "window_seconds": 1},
                conditions={"risk_tiers": ["high"]},
            ),
            policy("ok", "allow"),
        ],
        ACT,
    )
    assert res.allowed_actions[0].rate_limit is None and res.constraints == []


# -- confirmation and approval ids ------------------------------------------------------


def test_requires_confirmation_for_needs_approval_actions() -> None:
    res = resolve_one(
        [policy("ask", "require_approval", ["doc.write"]), policy("ok", "allow")],
        [action("doc.read"), action("doc.write")],
    )
    assert {a.action_id: a.requires_confirmation for a in res.allowed_actions} == {
        "doc.read": False,
        "doc.write": True,
    }
    assert res.decision.type == "partial"
    assert res.decision.approval_id is not None


def test_requires_confirmation_when_the_action_says_so() -> None:
    res = resolve_one(
        [policy("ok", "allow")],
        [action("doc.read"), action("doc.send", requires_confirmation=True)],
    )
    assert {a.action_id: a.requires_confirmation for a in res.allowed_actions} == {
        "doc.read": False,
        "doc.send": True,
    }
    # Allowed without a policy gate, but a confirmation is asked for: an approval id.
    assert res.decision.type == "allow"
    assert res.decision.approval_id is not None


def test_no_approval_id_when_nothing_needs_confirmation() -> None:
    res = resolve_one([policy("ok", "allow")], [action("doc.read"), action("doc.write")])
    assert res.decision.approval_id is None


def test_denied_action_asking_for_confirmation_gives_no_approval_id() -> None:
    res = resolve_one(
        [policy("ok", "allow", ["doc.read"])],
        [action("doc.read"), action("doc.send", requires_confirmation=True)],
    )
    assert res.decision.type == "partial"
    assert res.decision.approval_id is None


def test_approval_ids_are_fresh_uuid7(rt: cra.Runtime) -> None:
    rt.load_atlas(PAYMENTS)
    sid = new_session(rt)
    ids = {rt.resolve(request(rt, sid, risk_tier="high")).decision.approval_id for _ in range(5)}
    assert len(ids) == 5
    for i in ids:
        assert i is not None and i[14] == "7" and i == i.lower()


# -- decision type and reason ----------------------------------------------------------


def test_decision_allow() -> None:
    res = resolve_one([policy("ok", "allow")], [action("doc.read"), action("doc.write")])
    assert (res.decision.type, res.decision.reason) == ("allow", None)


def test_decision_partial_when_something_is_denied() -> None:
    res = resolve_one(
        [policy("ok", "allow", ["doc.read"])], [action("doc.read"), action("doc.write")]
    )
    assert (res.decision.type, res.decision.reason) == (
        "partial",
        "Some actions are denied by policy",
    )


def test_decision_partial_when_something_needs_approval() -> None:
    res = resolve_one(
        [policy("ask", "require_approval", ["doc.write"]), policy("ok", "allow")],
        [action("doc.read"), action("doc.write")],
    )
    assert res.denied_actions == []
    assert (res.decision.type, res.decision.reason) == (
        "partial",
        "Some actions are denied by policy",
    )


def test_decision_requires_approval() -> None:
    res = resolve_one(
        [policy("ask", "require_approval", ["doc.write"]), policy("no", "deny", ["doc.read"])],
        [action("doc.read"), action("doc.write")],
    )
    assert (res.decision.type, res.decision.reason) == (
        "requires_approval",
        "Human approval required",
    )
    assert res.decision.approval_id is not None


def test_decision_deny_reason_is_the_first_denial() -> None:
    res = resolve_one(
        [policy("no-write", "deny", ["doc.write"], reason="writes are off")],
        [action("doc.write"), action("doc.read")],
    )
    assert (res.decision.type, res.decision.reason) == ("deny", "writes are off")
    res = resolve_one(
        [policy("no-write", "deny", ["doc.write"], reason="writes are off")],
        [action("doc.read"), action("doc.write")],
    )
    assert (res.decision.type, res.decision.reason) == ("deny", "No policy allows this action")
    assert res.decision.approval_id is None


def test_decision_deny_when_no_actions_match() -> None:
    res = resolve_one([policy("ok", "allow")], [])
    assert (res.decision.type, res.decision.reason) == ("deny", "No actions matched the request")
    assert res.allowed_actions == [] and res.denied_actions == []


def test_default_reason_names_the_policy() -> None:
    res = resolve_one([policy("quiet", "deny")], ACT)
    assert outcome(res, "doc.read") == ("deny", "quiet", "Denied by policy quiet")


def test_reason_from_parameters_is_accepted() -> None:
    res = resolve_one([policy("legacy", "deny", parameters={"reason": "said in parameters"})], ACT)
    assert outcome(res, "doc.read") == ("deny", "legacy", "said in parameters")


def test_top_level_reason_wins_over_parameters_reason() -> None:
    """Code's choice when both are given."""
    res = resolve_one([policy("both", "deny", reason="top", parameters={"reason": "inner"})], ACT)
    assert outcome(res, "doc.read")[2] == "top"


# -- candidate atlases ---------------------------------------------------------------


def test_policies_of_non_candidate_atlases_do_not_apply(rt: cra.Runtime) -> None:
    rt.load_atlas(RESOURCES)
    rt.load_atlas(GUARD)
    sid = new_session(rt)
    everything = rt.resolve(request(rt, sid))
    assert decided_by(everything)["resource.delete"] == "no-deletes-anywhere"
    only = rt.resolve(request(rt, sid, atlas_ids=["org.cra.resources"]))
    assert decided_by(only)["resource.delete"] == "never-delete"


def test_allow_of_a_non_candidate_atlas_does_not_allow(rt: cra.Runtime) -> None:
    rt.load_atlas(make_atlas("org.test.opener", policies=[policy("allow-all", "allow")]))
    rt.load_atlas(make_atlas("org.test.closed", actions=[action("door.open")]))
    sid = new_session(rt)
    assert rt.resolve(request(rt, sid)).allowed_action_ids == ["door.open"]
    res = rt.resolve(request(rt, sid, atlas_ids=["org.test.closed"]))
    assert decided_by(res) == {"door.open": "default-deny"}
    both = rt.resolve(request(rt, sid, atlas_ids=["org.test.closed", "org.test.opener"]))
    assert both.allowed_action_ids == ["door.open"]


def test_policies_of_one_atlas_govern_actions_of_another(rt: cra.Runtime) -> None:
    rt.load_atlas(GUARD)
    rt.load_atlas(
        make_atlas(
            "org.test.files",
            actions=[action("file.delete"), action("file.read")],
            policies=[policy("ok", "allow")],
        )
    )
    sid = new_session(rt)
    res = rt.resolve(request(rt, sid))
    assert decided_by(res) == {"file.delete": "no-deletes-anywhere"}
    assert res.denied_actions[0].reason == "Guard rails forbid deletion"


def test_payments_conformance_atlas(rt: cra.Runtime) -> None:
    rt.load_atlas(PAYMENTS)
    sid = new_session(rt)
    high = rt.resolve(request(rt, sid, "Refund an order", risk_tier="high"))
    assert high.decision.type == "requires_approval"
    assert [a.requires_confirmation for a in high.allowed_actions] == [True, True]
    assert [(c.constraint_id, c.type) for c in high.constraints] == [
        ("human-for-risky", "require_approval")
    ]
    low = rt.resolve(request(rt, sid, "Check an order"))
    assert low.decision.type == "allow" and low.decision.approval_id is None
    assert low.constraints == []
