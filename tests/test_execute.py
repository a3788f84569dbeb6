"""Execute (CARP §5): the order of the checks, every error code execute can
produce, the response and its HTTP status, the events of each outcome with
their exact payload keys and span, parameter and result hashes, and the
executors (registration, decorator, atlas executor names, async)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from typing import Any

import cra
import pytest
from cra.errors import ConflictError, ExpiredError, NotFoundError, ValidationError
from cra.execute import ExecuteResponse
from execute_helpers import (
    OPS_ID,
    RESPONSE_KEYS,
    START_TS,
    Calls,
    Harness,
    code,
    ops_atlas,
    value_hash,
)
from resolve_helpers import UUID_RE, action, policy

UNKNOWN = "0193a0b0-0000-7000-8000-0000000004ff"
RECEIVED_KEYS = {"action_id", "atlas_ids", "goal", "operation", "request_id", "resolution_id"}
REQUESTED_KEYS = {"action_id", "parameters_hash", "resolution_id"}


@pytest.fixture
def h() -> Iterator[Harness]:
    with Harness() as harness:
        harness.resolve()
        yield harness


def payload_of(events: list[cra.TRACEEvent], event_type: str) -> dict[str, Any]:
    (found,) = [e.payload for e in events if e.event_type == event_type]
    return found


# -- the order of the checks ------------------------------------------------------------


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
    one_refund = policy(
        "one-refund",
        "rate_limit",
        ["payment.refund"],
        parameters={"max_calls": 1, "window_seconds": 60},
    )
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


# -- request faults are exceptions ------------------------------------------------------


def fault(h: Harness, req: dict[str, Any]) -> cra.CraError:
    with pytest.raises(cra.CraError) as info:
        h.rt.execute(req)
    return info.value


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda r: r.update(carp_version="2.0"), "/carp_version"),
        (lambda r: r.pop("task"), "/task"),
        (lambda r: r.pop("execution"), "/execution"),
        (lambda r: r["execution"].pop("action_id"), "/execution/action_id"),
        (lambda r: r["execution"].update(resolution_id="nope"), "/execution/resolution_id"),
        (lambda r: r["execution"].update(parameters=[1]), "/execution/parameters"),
        (lambda r: r["execution"].update(idempotency_key=""), "/execution/idempotency_key"),
        (lambda r: r["execution"].update(extra=1), "/execution/extra"),
        (lambda r: r.update(operation="resolve"), "/operation"),
        (lambda r: r.update(unknown=1), "/unknown"),
    ],
)
def test_invalid_request(h: Harness, mutate: Any, path: str) -> None:
    req = h.execute_request("api.call", {"path": "/a"})
    mutate(req)
    err = fault(h, req)
    assert isinstance(err, ValidationError)
    assert (err.code, err.category, err.http_status, err.recoverable) == (
        "INVALID_REQUEST",
        "validation",
        400,
        False,
    )
    assert path in [e["path"] for e in err.errors]


@pytest.mark.parametrize(
    ("params", "path"),
    [({"x": {1}}, "/execution/parameters/x"), ({"x": float("nan")}, "/execution/parameters/x")],
)
def test_parameters_that_are_not_json(h: Harness, params: dict[str, Any], path: str) -> None:
    n = h.count()
    err = fault(h, h.execute_request("api.echo", params))
    assert isinstance(err, ValidationError)
    assert (err.code, err.path) == ("INVALID_REQUEST", path)
    # Still a request of an open session: one error.occurred, like any rejected request.
    assert h.types(start=n) == ["error.occurred"]


def test_execute_without_execution_is_invalid_at_execution(h: Harness) -> None:
    req = h.execute_request("api.call", {"path": "/a"})
    del req["execution"]
    err = fault(h, req)
    assert err.errors == [{"path": "/execution", "message": err.errors[0]["message"]}]


def test_session_not_found(h: Harness) -> None:
    req = h.execute_request("api.call", {"path": "/a"})
    req["requester"]["session_id"] = UNKNOWN
    err = fault(h, req)
    assert isinstance(err, NotFoundError)
    assert (err.code, err.http_status) == ("SESSION_NOT_FOUND", 404)


def test_session_ended(h: Harness) -> None:
    req = h.execute_request("api.echo")
    h.rt.end_session(h.sid)
    err = fault(h, req)
    assert isinstance(err, ExpiredError)
    assert (err.code, err.category, err.http_status) == ("SESSION_ENDED", "expired", 410)


def test_duplicate_request(h: Harness) -> None:
    first = h.execute_request("api.echo")
    assert h.rt.execute(first).status == "success"
    err = fault(h, first)
    assert isinstance(err, ConflictError)
    assert (err.code, err.category, err.http_status) == ("DUPLICATE_REQUEST", "conflict", 409)


def test_a_denied_answer_uses_up_its_request_id(h: Harness) -> None:
    req = h.execute_request("db.drop")
    assert h.rt.execute(req).status == "denied"
    assert fault(h, req).code == "DUPLICATE_REQUEST"


def test_request_id_of_a_rejected_execute_can_be_used_again(h: Harness) -> None:
    req = h.execute_request("api.echo", resolution=UNKNOWN)
    assert fault(h, req).code == "RESOLUTION_NOT_FOUND"
    req["execution"]["resolution_id"] = h.resolution_of(h.sid).resolution_id
    assert h.rt.execute(req).status == "success"


@pytest.mark.parametrize("timestamp", ["2027-01-15T08:05:00.000001Z", "2027-01-15T07:54:59Z"])
def test_clock_skew(h: Harness, timestamp: str) -> None:
    err = fault(h, h.execute_request("api.echo", timestamp=timestamp))
    assert isinstance(err, ValidationError)
    assert (err.code, err.path, err.http_status) == ("CLOCK_SKEW", "/timestamp", 400)


def test_timestamp_at_the_edge_of_the_skew_window_is_accepted(h: Harness) -> None:
    assert h.execute("api.echo", timestamp="2027-01-15T08:05:00Z").status == "success"


def test_resolution_not_found(h: Harness) -> None:
    err = fault(h, h.execute_request("api.echo", resolution=UNKNOWN))
    assert isinstance(err, NotFoundError)
    assert (err.code, err.http_status, err.recoverable) == ("RESOLUTION_NOT_FOUND", 404, False)


def test_resolution_of_another_session_is_not_found(h: Harness) -> None:
    other = h.session()
    theirs = h.resolve(other)
    err = fault(h, h.execute_request("api.echo", resolution=theirs))
    assert isinstance(err, NotFoundError)
    assert err.code == "RESOLUTION_NOT_FOUND"
    assert h.execute("api.echo", sid=other, resolution=theirs).status == "success"


def test_resolution_expired_is_410_and_recoverable(h: Harness) -> None:
    h.clock.advance(3600)
    err = fault(h, h.execute_request("api.echo"))
    assert isinstance(err, ExpiredError)
    assert (err.code, err.category, err.http_status, err.recoverable) == (
        "RESOLUTION_EXPIRED",
        "expired",
        410,
        True,
    )
    # Resolving again recovers.
    h.resolve()
    assert h.execute("api.echo").status == "success"


def test_resolution_is_valid_until_just_before_it_expires(h: Harness) -> None:
    h.clock.advance(3599.999999)
    assert h.execute("api.echo").status == "success"


def test_idempotency_conflict(h: Harness) -> None:
    h.execute("api.echo", {"n": 1}, idempotency_key="k")
    err = fault(h, h.execute_request("api.echo", {"n": 2}, idempotency_key="k"))
    assert isinstance(err, ConflictError)
    assert (err.code, err.http_status) == ("IDEMPOTENCY_CONFLICT", 409)


def test_a_request_fault_records_error_occurred_in_its_own_span(h: Harness) -> None:
    n = h.count()
    fault(h, h.execute_request("api.echo", resolution=UNKNOWN))
    (event,) = h.events(start=n)
    assert event.event_type == "error.occurred"
    assert set(event.payload) == {"code", "message"}
    assert event.payload["code"] == "RESOLUTION_NOT_FOUND"
    assert event.parent_span_id == h.events()[0].span_id


def test_a_fault_of_an_unknown_session_records_nothing(h: Harness) -> None:
    n = h.count()
    req = h.execute_request("api.echo")
    req["requester"]["session_id"] = UNKNOWN
    fault(h, req)
    assert h.count() == n


# -- governance outcomes are answers ----------------------------------------------------


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


# -- the response -----------------------------------------------------------------------


def test_response_to_dict_has_exactly_the_protocol_keys(h: Harness) -> None:
    ok = h.execute("api.echo", {"x": [1, "two", None]})
    doc = ok.to_dict()
    assert set(doc) == RESPONSE_KEYS
    assert doc["carp_version"] == "1.0"
    assert doc["status"] == "success"
    assert doc["result"] == {"echo": {"x": [1, "two", None]}}
    assert doc["error"] is None
    assert doc["timestamp"] == START_TS
    assert doc["trace_id"] == h.rt.get_session(h.sid)["trace_id"]
    assert doc["resolution_id"] == h.resolution_of(h.sid).resolution_id
    for key in ("execution_id", "request_id", "resolution_id", "trace_id"):
        assert re.match(UUID_RE, doc[key])
    assert doc["execution_id"][14] == "7"
    json.dumps(doc)

    denied = h.execute("db.drop").to_dict()
    assert set(denied) == RESPONSE_KEYS
    assert set(denied["error"]) == {"code", "message", "details"}
    assert denied["result"] is None


def test_response_properties_match_to_dict(h: Harness) -> None:
    req = h.execute_request("api.echo", {"a": 1})
    r = h.rt.execute(req)
    doc = r.to_dict()
    assert (r.execution_id, r.request_id, r.resolution_id, r.timestamp, r.trace_id) == (
        doc["execution_id"],
        req["request_id"],
        doc["resolution_id"],
        doc["timestamp"],
        doc["trace_id"],
    )
    assert (r.status, r.ok, r.result, r.error) == ("success", True, {"echo": {"a": 1}}, None)
    assert "success" in repr(r)


def test_response_is_immutable(h: Harness) -> None:
    r = h.execute("api.echo")
    with pytest.raises(AttributeError):
        r.status = "denied"  # type: ignore[misc]
    r.to_dict()["status"] = "denied"
    assert r.status == "success"


@pytest.mark.parametrize(
    ("action_id", "params", "status", "http"),
    [
        ("api.echo", {}, "success", 200),
        ("payment.refund", {"order_id": "o", "amount": 1}, "pending_approval", 202),
        ("db.drop", {}, "denied", 403),
        ("api.call", {"path": 1}, "error", 422),
        ("api.flaky", {}, "error", 502),
    ],
)
def test_http_status_of_each_outcome(
    action_id: str, params: dict[str, Any], status: str, http: int
) -> None:
    with Harness(ops_atlas(extra_actions=[action("api.flaky")])) as h:
        h.rt.register_executor("api.flaky", lambda: 1 / 0)
        h.resolve()
        r = h.execute(action_id, params)
        assert (r.status, r.http_status) == (status, http)


def test_http_status_of_limits_is_429(h: Harness) -> None:
    for _ in range(2):
        h.execute("api.call", {"path": "/a"})
        h.execute("credit.use")
    assert h.execute("api.call", {"path": "/a"}).http_status == 429
    assert h.execute("credit.use").http_status == 429


def test_result_of_any_json_type(h: Harness) -> None:
    for value in (None, True, 0, -1.5, "text", [1, [2]], {"ü": "\U0001f600"}, 10**30):
        h.rt.register_executor("api.echo", lambda v=value, **p: v)
        assert h.execute("api.echo").result == value


# -- events -----------------------------------------------------------------------------


def outcome_events(h: Harness, action_id: str, params: Any = None, **kw: Any) -> list[Any]:
    n = h.count()
    r = h.execute(action_id, params, **kw)
    return [r, h.events(start=n)]


def test_events_of_a_success(h: Harness) -> None:
    r, events = outcome_events(h, "api.echo", {"k": "v"})
    assert [e.event_type for e in events] == [
        "carp.request.received",
        "action.requested",
        "action.approved",
        "action.executed",
    ]
    received, requested, approved, executed = (e.payload for e in events)
    assert set(received) == RECEIVED_KEYS
    assert received["operation"] == "execute"
    assert received["request_id"] == r.request_id
    assert received["resolution_id"] == r.resolution_id
    assert received["atlas_ids"] == [OPS_ID]
    assert received["goal"] == h.goal
    assert received["action_id"] == "api.echo"
    assert set(requested) == REQUESTED_KEYS
    assert approved == {"action_id": "api.echo", "resolution_id": r.resolution_id}
    assert set(executed) == {"action_id", "execution_id", "duration_ms", "result_hash"}
    assert executed["execution_id"] == r.execution_id
    assert isinstance(executed["duration_ms"], float) and executed["duration_ms"] >= 0


def test_events_of_a_failure(h: Harness) -> None:
    h.rt.register_executor("api.echo", lambda: 1 / 0)
    r, events = outcome_events(h, "api.echo")
    assert [e.event_type for e in events][2:] == ["action.approved", "action.failed"]
    assert events[-1].payload == {
        "action_id": "api.echo",
        "execution_id": r.execution_id,
        "error_code": "EXECUTION_FAILED",
        "error_message": "division by zero",
    }


def test_events_of_a_denial(h: Harness) -> None:
    _, events = outcome_events(h, "db.drop")
    assert [e.event_type for e in events] == [
        "carp.request.received",
        "action.requested",
        "action.denied",
    ]
    assert set(events[-1].payload) == {"action_id", "reason", "policy_id"}


def test_events_of_a_rate_limit(h: Harness) -> None:
    h.execute("api.call", {"path": "/a"})
    h.execute("api.call", {"path": "/a"})
    _, events = outcome_events(h, "api.call", {"path": "/a"})
    assert [e.event_type for e in events][2:] == ["action.denied", "policy.violated"]
    assert events[2].payload == {
        "action_id": "api.call",
        "policy_id": "api-rate",
        "reason": "rate_limit_exceeded",
    }
    violated = events[3].payload
    assert set(violated) == {"policy_id", "violation_type", "details", "action_id"}
    assert violated["violation_type"] == "rate_limit"
    assert violated["details"]["retry_after"] == 60.0


def test_events_of_a_spent_budget(h: Harness) -> None:
    h.execute("credit.use")
    h.execute("credit.use")
    _, events = outcome_events(h, "credit.use")
    assert events[2].payload["reason"] == "budget_exceeded"
    assert events[3].payload["violation_type"] == "budget"
    assert events[3].payload["details"]["limit"] == 2


def test_events_of_invalid_parameters(h: Harness) -> None:
    r, events = outcome_events(h, "api.call", {"path": 1})
    assert [e.event_type for e in events][2:] == ["action.denied", "policy.violated"]
    assert events[2].payload == {
        "action_id": "api.call",
        "policy_id": "parameters_schema",
        "reason": "invalid_parameters",
    }
    assert events[3].payload["violation_type"] == "invalid_parameters"
    assert r.error is not None
    assert events[3].payload["details"] == r.error.details


def test_events_of_a_pending_approval(h: Harness) -> None:
    _, events = outcome_events(h, "payment.refund", {"order_id": "o", "amount": 1})
    assert [e.event_type for e in events] == [
        "carp.request.received",
        "action.requested",
        "policy.evaluated",
    ]
    assert events[-1].payload == {
        "action_id": "payment.refund",
        "policy_id": "refunds-need-a-human",
        "result": "requires_approval",
    }


def test_request_received_echoes_what_the_request_gave(h: Harness) -> None:
    task = {
        "risk_tier": "medium",
        "context_hints": ["billing"],
        "required_capabilities": ["ops"],
    }
    _, events = outcome_events(h, "api.echo", task=task)
    received = events[0].payload
    assert set(received) == RECEIVED_KEYS | set(task)
    assert received["risk_tier"] == "medium"
    assert received["context_hints"] == ["billing"]
    assert received["required_capabilities"] == ["ops"]


def test_all_events_of_one_execute_share_a_span_under_the_root(h: Harness) -> None:
    root = h.events()[0]
    assert root.event_type == "session.started" and root.parent_span_id is None
    spans = set()
    for action_id, params in [("api.echo", {}), ("db.drop", {}), ("api.call", {"path": 1})]:
        _, events = outcome_events(h, action_id, params)
        assert {e.span_id for e in events} == {events[0].span_id}
        assert {e.parent_span_id for e in events} == {root.span_id}
        assert {e.trace_id for e in events} == {root.trace_id}
        spans.add(events[0].span_id)
    assert len(spans) == 3
    assert h.rt.verify(h.sid).valid


def test_event_timestamps_follow_the_clock(h: Harness) -> None:
    h.clock.advance(1.5)
    _, events = outcome_events(h, "api.echo")
    assert {e.timestamp for e in events} == {"2027-01-15T08:00:01.500000Z"}


# -- hashes -----------------------------------------------------------------------------

HASHED_PARAMS: list[Any] = [
    {},
    {"b": 1, "a": [True, None, 1.5, "é"]},
    {"nested": {"z": {"y": 1e-07}}, "big": 10**20},
]


@pytest.mark.parametrize("algorithm", ["sha256", "blake3"])
@pytest.mark.parametrize("params", HASHED_PARAMS)
def test_parameters_and_result_hashes(algorithm: str, params: dict[str, Any]) -> None:
    with Harness(hash_algorithm=algorithm) as h:
        h.resolve()
        r, events = outcome_events(h, "api.echo", params)
        assert r.status == "success"
        requested = payload_of(events, "action.requested")
        executed = payload_of(events, "action.executed")
        assert requested["parameters_hash"] == value_hash(params, algorithm)
        assert executed["result_hash"] == value_hash({"echo": params}, algorithm)
        assert h.rt.verify(h.sid).algorithm == algorithm


def test_pending_answer_names_the_parameters_hash(h: Harness) -> None:
    params = {"order_id": "o-7", "amount": 12.5}
    r, events = outcome_events(h, "payment.refund", params)
    assert r.error is not None
    assert r.error.details["parameters_hash"] == value_hash(params)
    assert payload_of(events, "action.requested")["parameters_hash"] == value_hash(params)


# -- executors --------------------------------------------------------------------------


def test_register_executor_gets_the_parameters_as_keywords(h: Harness) -> None:
    seen: dict[str, Any] = {}

    def call(path: str, retries: int = 0) -> dict[str, Any]:
        seen.update(path=path, retries=retries)
        return {"ok": True}

    h.rt.register_executor("api.call", call)
    assert h.execute("api.call", {"path": "/x", "retries": 2}).result == {"ok": True}
    assert seen == {"path": "/x", "retries": 2}


def test_register_executor_needs_a_callable(h: Harness) -> None:
    with pytest.raises(TypeError):
        h.rt.register_executor("api.echo", "not callable")  # type: ignore[arg-type]


def test_action_decorator_registers_and_returns_the_function(h: Harness) -> None:
    @h.rt.action("api.echo")
    def echo_twice(**p: Any) -> list[Any]:
        return [p, p]

    assert echo_twice(a=1) == [{"a": 1}, {"a": 1}]
    assert h.execute("api.echo", {"a": 2}).result == [{"a": 2}, {"a": 2}]


def test_executor_found_by_the_atlas_executor_name() -> None:
    atlas = ops_atlas(extra_actions=[action("api.named", executor="http_get")])
    with Harness(atlas, executors=False) as h:
        h.rt.register_executor("http_get", lambda **p: "by name")
        h.resolve()
        assert h.execute("api.named").result == "by name"
        # An executor registered for the action id itself takes precedence.
        h.rt.register_executor("api.named", lambda **p: "by id")
        assert h.execute("api.named").result == "by id"


def test_later_registration_replaces_the_executor(h: Harness) -> None:
    h.rt.register_executor("api.echo", lambda **p: 1)
    h.rt.register_executor("api.echo", lambda **p: 2)
    assert h.execute("api.echo").result == 2


def test_executor_with_wrong_parameters_is_an_execution_failure(h: Harness) -> None:
    h.rt.register_executor("api.echo", lambda only: only)
    r = h.execute("api.echo", {"other": 1})
    assert (r.status, code(r)) == ("error", "EXECUTION_FAILED")
    assert "other" in (r.error.message if r.error else "")


async def async_echo(**parameters: Any) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"async": parameters}


def test_async_executor(h: Harness) -> None:
    h.rt.register_executor("api.echo", async_echo)
    r = h.execute("api.echo", {"n": 1})
    assert (r.status, r.result) == ("success", {"async": {"n": 1}})
    assert payload_of(h.events(start=h.count() - 4), "action.executed")["duration_ms"] >= 0


def test_async_executor_called_from_a_running_event_loop(h: Harness) -> None:
    h.rt.register_executor("api.echo", async_echo)

    async def agent() -> ExecuteResponse:
        return h.execute("api.echo", {"n": 2})

    r = asyncio.run(agent())
    assert (r.status, r.result) == ("success", {"async": {"n": 2}})


def test_async_executor_failure(h: Harness) -> None:
    async def boom(**_: Any) -> None:
        await asyncio.sleep(0)
        raise ValueError("async trouble")

    h.rt.register_executor("api.echo", boom)
    r = h.execute("api.echo")
    assert (code(r), r.error.message if r.error else None) == ("EXECUTION_FAILED", "async trouble")

    async def agent() -> ExecuteResponse:
        return h.execute("api.echo")

    assert code(asyncio.run(agent())) == "EXECUTION_FAILED"


def test_duration_is_recorded_for_successes_only(h: Harness) -> None:
    _, ok = outcome_events(h, "api.echo")
    duration = payload_of(ok, "action.executed")["duration_ms"]
    assert isinstance(duration, float) and duration >= 0
    h.rt.register_executor("api.echo", lambda: 1 / 0)
    _, failed = outcome_events(h, "api.echo")
    assert "duration_ms" not in payload_of(failed, "action.failed")


def test_executor_is_not_called_for_answers_without_a_run(h: Harness) -> None:
    calls = Calls()
    for action_id in ("api.call", "payment.refund", "db.drop", "credit.use"):
        h.rt.register_executor(action_id, calls)
    h.execute("api.call", {"path": 1})
    h.execute("payment.refund", {"order_id": "o", "amount": 1})
    h.execute("db.drop")
    h.execute("credit.use")
    h.execute("credit.use")
    h.execute("credit.use")
    assert calls.count == 2


def test_every_execution_gets_its_own_id(h: Harness) -> None:
    ids = {h.execute("api.echo", {"i": i}).execution_id for i in range(5)}
    assert len(ids) == 5
