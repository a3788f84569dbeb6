"""Constraints of CARP resolve (§4.4): open rate limits and budgets that add a
constraint and let evaluation go on, budget costs by pattern, approval
constraints, their first-use order, and the rate_limit field of an allowed
action.
"""

from __future__ import annotations

from resolve_helpers import (
    ACT,
    action,
    outcome,
    policy,
    resolve_one,
)


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
            policy("ask", "require_approval", ["doc.write"], description="a human looks"),
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
