"""Policy order in CARP resolve (§4.3): the order of the policy types, priorities
within a type, ties in declaration and atlas load order, and which policy the
policy.evaluated event names as the deciding one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cra
import pytest
from resolve_helpers import (
    ACT,
    action,
    brief,
    decided_by,
    make_atlas,
    new_session,
    outcome,
    policy,
    request,
    resolve_one,
)

EXHAUSTED_BUDGET = {"limit": 0}


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
    # doc.write is there so that a pattern naming it matches an action.
    res = resolve_one(policies, [*ACT, action("doc.write")])
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


# A cross-atlas pattern (it starts with "*"): AWAY is loaded before HOME in
# one case, so it cannot name HOME's actions through a dependency.
AWAY = make_atlas(
    "org.test.away", policies=[policy("away-deny", "deny", ["*.read"], reason="away")]
)


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
        "org.test.away", policies=[policy("away-deny", "deny", ["*.read"], priority=5)]
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
