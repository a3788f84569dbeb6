"""Governance outcomes of execute (CARP §5) are answers, not exceptions: not
allowed, rate limit and budget exceeded, approval required and rejected,
invalid parameters with their paths, no executor, failed executions and
invalid results.
"""

from __future__ import annotations

from typing import Any

import pytest
from execute_helpers import (
    Harness,
    code,
    payload_of,
    value_hash,
)


def test_action_not_allowed(h: Harness) -> None:
    denied = h.execute("db.drop")
    assert (denied.status, code(denied), denied.http_status) == (
        "denied",
        "ACTION_NOT_ALLOWED",
        403,
    )
    assert denied.error is not None
    assert denied.error.message == "Databases are never dropped"
    assert denied.result is None
    missing = h.execute("not.listed")
    assert (missing.status, code(missing)) == ("denied", "ACTION_NOT_ALLOWED")


def test_rate_limit_exceeded_has_retry_after(h: Harness) -> None:
    h.execute("api.call", {"path": "/a"})
    h.clock.advance(20)
    h.execute("api.call", {"path": "/b"})
    h.clock.advance(10)
    r = h.execute("api.call", {"path": "/c"})
    assert (r.status, code(r), r.http_status) == ("denied", "RATE_LIMIT_EXCEEDED", 429)
    assert r.retry_after == 30.0
    assert r.error is not None and r.error.details["retry_after"] == 30.0
    assert r.to_dict()["error"]["details"]["retry_after"] == 30.0


def test_budget_exceeded(h: Harness) -> None:
    h.execute("credit.use")
    h.execute("credit.use")
    r = h.execute("credit.use")
    assert (r.status, code(r), r.http_status) == ("denied", "BUDGET_EXCEEDED", 429)
    assert r.error is not None
    assert r.error.details["policy_id"] == "credits"
    assert r.retry_after is None


def test_approval_required(h: Harness) -> None:
    params = {"order_id": "o-1", "amount": 20}
    r = h.execute("payment.refund", params)
    assert (r.status, code(r), r.http_status) == ("pending_approval", "APPROVAL_REQUIRED", 202)
    assert r.error is not None
    assert r.error.details == {
        "approval_id": h.resolution_of(h.sid).decision.approval_id,
        "action_id": "payment.refund",
        "parameters_hash": value_hash(params),
    }


def test_approval_rejected(h: Harness) -> None:
    approval_id = h.resolution_of(h.sid).decision.approval_id
    assert approval_id is not None
    h.execute("payment.refund", {"order_id": "o-1", "amount": 20})
    h.rt.reject(approval_id, "bob")
    r = h.execute("payment.refund", {"order_id": "o-1", "amount": 20})
    assert (r.status, code(r), r.http_status) == ("denied", "APPROVAL_REJECTED", 403)


def test_invalid_parameters_lists_every_violation_with_its_path(h: Harness) -> None:
    r = h.execute("api.call", {"path": "no-slash", "retries": 9, "extra": True})
    assert (r.status, code(r), r.http_status) == ("error", "INVALID_PARAMETERS", 422)
    assert r.error is not None
    errors = r.error.details["errors"]
    assert sorted(e["path"] for e in errors) == ["", "/path", "/retries"]
    assert all(isinstance(e["message"], str) and e["message"] for e in errors)
    assert "extra" in next(e["message"] for e in errors if e["path"] == "")


def test_invalid_parameters_in_nested_objects_and_arrays(h: Harness) -> None:
    params = {"customer": {"email": 1}, "lines": [{"sku": "a", "qty": 1}, {"sku": 2, "qty": 0}]}
    r = h.execute("order.place", params)
    assert r.error is not None
    paths = sorted(e["path"] for e in r.error.details["errors"])
    assert paths == ["/customer", "/customer/email", "/lines/1/qty", "/lines/1/sku"]


def test_missing_required_parameters_are_reported_at_the_root(h: Harness) -> None:
    r = h.execute("api.call", {})
    assert r.error is not None
    (only,) = r.error.details["errors"]
    assert only["path"] == ""
    assert "path" in only["message"]


def test_no_executor() -> None:
    with Harness(executors=False) as bare:
        bare.resolve()
        r = bare.execute("api.echo")
        assert (r.status, code(r), r.http_status) == ("error", "NO_EXECUTOR", 502)
        assert r.error is not None and r.error.details == {"action_id": "api.echo"}
        failed = payload_of(bare.events(start=bare.count() - 4), "action.failed")
        assert failed["error_code"] == "NO_EXECUTOR"


def test_execution_failed_keeps_the_message_and_the_runtime_working(h: Harness) -> None:
    def boom(**_: Any) -> None:
        raise RuntimeError("the API is down")

    h.rt.register_executor("api.echo", boom)
    r = h.execute("api.echo")
    assert (r.status, code(r), r.http_status) == ("error", "EXECUTION_FAILED", 502)
    assert r.error is not None
    assert r.error.message == "the API is down"
    assert r.error.details == {"exception": "RuntimeError"}
    assert r.result is None
    h.rt.register_executor("api.echo", lambda **p: "back")
    assert h.execute("api.echo").result == "back"
    assert h.rt.verify(h.sid).valid


def test_execution_failed_without_a_message_names_the_exception(h: Harness) -> None:
    def boom(**_: Any) -> None:
        raise KeyError

    h.rt.register_executor("api.echo", boom)
    r = h.execute("api.echo")
    assert r.error is not None and r.error.message == "KeyError"


def test_an_interrupt_in_the_executor_is_recorded_and_raised(h: Harness) -> None:
    def leave(**_: Any) -> None:
        raise SystemExit(3)

    h.rt.register_executor("api.echo", leave)
    n = h.count()
    with pytest.raises(SystemExit):
        h.execute("api.echo")
    failed = payload_of(h.events(start=n), "action.failed")
    assert failed["error_code"] == "EXECUTION_FAILED"
    assert "SystemExit" in failed["error_message"]
    assert h.execute("api.call", {"path": "/a"}).status == "success"


@pytest.mark.parametrize(
    "result", [{1, 2}, {"when": object()}, float("nan"), {1: "int key"}, b"bytes"]
)
def test_invalid_result(h: Harness, result: Any) -> None:
    h.rt.register_executor("api.echo", lambda **p: result)
    r = h.execute("api.echo")
    assert (r.status, code(r), r.http_status) == ("error", "INVALID_RESULT", 502)
    assert r.error is not None
    assert r.error.message.startswith("the executor's result is not JSON")
    assert not r.error.message.endswith("(at )")
    assert r.result is None
    failed = payload_of(h.events(start=h.count() - 4), "action.failed")
    assert failed["error_code"] == "INVALID_RESULT"
    assert h.execute("api.call", {"path": "/a"}).status == "success"
