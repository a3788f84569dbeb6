"""The order of the checks of execute (CARP §5): schema, session, resolution,
action, policy recheck, approval, rate limit, budget, parameters,
idempotency, and only then the executor.
"""

from __future__ import annotations

import pytest
from cra.errors import NotFoundError, ValidationError
from execute_helpers import (
    OPS_ID,
    UNKNOWN,
    Calls,
    Harness,
    code,
    one_refund_per_minute,
    ops_atlas,
)
from resolve_helpers import action, policy


def test_schema_is_checked_before_the_resolution(h: Harness) -> None:
    req = h.execute_request("api.call", {"path": "/a"}, resolution=UNKNOWN)
    req["carp_version"] = "2.0"
    with pytest.raises(ValidationError) as info:
        h.rt.execute(req)
    assert info.value.code == "INVALID_REQUEST"
    assert info.value.path == "/carp_version"


def test_session_is_checked_before_the_resolution(h: Harness) -> None:
    req = h.execute_request("api.call", {"path": "/a"}, resolution=UNKNOWN)
    req["requester"]["session_id"] = UNKNOWN
    with pytest.raises(NotFoundError) as info:
        h.rt.execute(req)
    assert info.value.code == "SESSION_NOT_FOUND"


def test_resolution_is_checked_before_the_action(h: Harness) -> None:
    with pytest.raises(NotFoundError) as info:
        h.execute("not.listed", resolution=UNKNOWN)
    assert info.value.code == "RESOLUTION_NOT_FOUND"


def test_action_must_be_in_the_resolution_even_if_policy_now_allows_it(h: Harness) -> None:
    newer = ops_atlas(
        version="1.1.0",
        extra_actions=[action("api.fresh")],
        extra_policies=[policy("allow-drop", "allow", ["db.*", "api.fresh"], priority=10)],
    )
    newer["policies"] = [p for p in newer["policies"] if p["policy_id"] != "never-drop"]
    h.rt.load_atlas(newer, replace=True)
    fresh = h.execute("api.fresh")
    assert (fresh.status, code(fresh)) == ("denied", "ACTION_NOT_ALLOWED")
    assert h.events()[-1].payload["policy_id"] == "not_in_resolution"
    drop = h.execute("db.drop")
    assert (drop.status, code(drop)) == ("denied", "ACTION_NOT_ALLOWED")
    assert h.events()[-1].payload == {
        "action_id": "db.drop",
        "policy_id": "never-drop",
        "reason": "Databases are never dropped",
    }


def test_policy_is_checked_again_at_execution_time(h: Harness) -> None:
    assert h.execute("api.echo").status == "success"
    h.rt.load_atlas(
        ops_atlas(
            version="1.1.0",
            extra_policies=[policy("echo-off", "deny", ["api.echo"], reason="Echo is off")],
        ),
        replace=True,
    )
    calls = Calls()
    h.rt.register_executor("api.echo", calls)
    r = h.execute("api.echo")
    assert (r.status, code(r)) == ("denied", "ACTION_NOT_ALLOWED")
    assert r.error is not None and r.error.message == "Echo is off"
    assert calls.count == 0
    assert h.events()[-1].payload == {
        "action_id": "api.echo",
        "policy_id": "echo-off",
        "reason": "Echo is off",
    }


def test_unloaded_atlas_denies_at_execution_time(h: Harness) -> None:
    h.rt.unload_atlas(OPS_ID)
    r = h.execute("api.echo")
    assert (r.status, code(r)) == ("denied", "ACTION_NOT_ALLOWED")


def test_atlas_without_an_allow_denies_by_default_at_execution_time(h: Harness) -> None:
    newer = ops_atlas(version="1.1.0")
    newer["policies"] = [p for p in newer["policies"] if p["type"] != "allow"]
    h.rt.load_atlas(newer, replace=True)
    r = h.execute("api.echo")
    assert (r.status, code(r)) == ("denied", "ACTION_NOT_ALLOWED")
    assert h.events()[-1].payload["policy_id"] == "default-deny"


def test_policy_recheck_comes_before_approval(h: Harness) -> None:
    h.rt.load_atlas(
        ops_atlas(version="1.1.0", extra_policies=[policy("no-refunds", "deny", ["payment.*"])]),
        replace=True,
    )
    r = h.execute("payment.refund", {"order_id": "o-1", "amount": 20})
    assert (r.status, code(r)) == ("denied", "ACTION_NOT_ALLOWED")
    assert h.rt.pending_approvals(h.sid) == []


def test_approval_comes_before_the_rate_limit() -> None:
    one_refund = one_refund_per_minute()
    with Harness(ops_atlas(extra_policies=[one_refund])) as h:
        res = h.resolve()
        approval_id = res.decision.approval_id
        assert approval_id is not None
        first = {"order_id": "o-1", "amount": 20}
        assert h.execute("payment.refund", first).status == "pending_approval"
        h.rt.approve(approval_id, "alice")
        assert h.execute("payment.refund", first).status == "success"
        # The window is full, but an unapproved refund still waits for a human first.
        second = {"order_id": "o-2", "amount": 30}
        waiting = h.execute("payment.refund", second)
        assert (waiting.status, code(waiting)) == ("pending_approval", "APPROVAL_REQUIRED")
        h.rt.approve(approval_id, "alice")
        limited = h.execute("payment.refund", second)
        assert (limited.status, code(limited)) == ("denied", "RATE_LIMIT_EXCEEDED")


def test_rate_limit_comes_before_budget() -> None:
    # The budget is declared first; rate limits are still checked first.
    extra = [
        policy("one-credit", "budget", ["credit.use"], parameters={"limit": 1}),
        policy(
            "one-use",
            "rate_limit",
            ["credit.use"],
            parameters={"max_calls": 1, "window_seconds": 60},
        ),
    ]
    with Harness(ops_atlas(extra_policies=extra)) as h:
        h.resolve()
        assert h.execute("credit.use").status == "success"
        r = h.execute("credit.use")
        assert (r.status, code(r)) == ("denied", "RATE_LIMIT_EXCEEDED")


def test_rate_limit_comes_before_parameters(h: Harness) -> None:
    for path in ("/a", "/b"):
        assert h.execute("api.call", {"path": path}).status == "success"
    r = h.execute("api.call", {"path": 5})
    assert code(r) == "RATE_LIMIT_EXCEEDED"


def test_budget_comes_before_parameters(h: Harness) -> None:
    for _ in range(2):
        assert h.execute("credit.transfer", {"to": "x"}).status == "success"
    r = h.execute("credit.transfer", {"to": 5})
    assert (r.status, code(r)) == ("denied", "BUDGET_EXCEEDED")


def test_parameters_come_before_idempotency(h: Harness) -> None:
    assert h.execute("api.call", {"path": "/a"}, idempotency_key="k").status == "success"
    # The same key with other parameters would conflict; these parameters are invalid first.
    r = h.execute("api.call", {"path": 5}, idempotency_key="k")
    assert (r.status, code(r)) == ("error", "INVALID_PARAMETERS")


def test_idempotency_comes_before_the_executor(h: Harness) -> None:
    calls = Calls()
    h.rt.register_executor("api.echo", calls)
    first = h.execute("api.echo", {"n": 1}, idempotency_key="k")
    again = h.execute("api.echo", {"n": 1}, idempotency_key="k")
    assert again.execution_id == first.execution_id
    assert calls.count == 1
