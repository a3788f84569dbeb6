"""The validate operation (CARP §6): valid or invalid with every fault's
JSON pointer, the §3 rules (schema, duplicate id, clock skew, session,
resolution, action, parameters), and no state change: no request id
claimed, no resolution, no limit counted, only `carp.request.received`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from execute_helpers import Calls, Harness
from resolve_helpers import UUID_RE

UNKNOWN = "0193a0b0-0000-7000-8000-0000000004ff"


@pytest.fixture
def h() -> Iterator[Harness]:
    with Harness() as harness:
        yield harness


def as_validate(req: dict[str, Any]) -> dict[str, Any]:
    return dict(req, operation="validate")


def paths(report: dict[str, Any]) -> list[str]:
    return [e["path"] for e in report["errors"]]


def check_execution(h: Harness, action_id: str, params: Any, **kw: Any) -> dict[str, Any]:
    report: dict[str, Any] = h.rt.validate(as_validate(h.execute_request(action_id, params, **kw)))
    return report


def test_a_valid_request(h: Harness) -> None:
    report = h.rt.validate(as_validate(h.resolve_request()))
    assert report == {"valid": True, "errors": []}


def test_a_valid_request_of_any_operation(h: Harness) -> None:
    assert h.rt.validate(h.resolve_request())["valid"]
    h.resolve()
    assert h.rt.validate(h.execute_request("api.call", {"path": "/a"}))["valid"]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda r: r.update(carp_version="2.0"), ["/carp_version"]),
        (lambda r: r.pop("task"), ["/task"]),
        (lambda r: (r.update(carp_version="2.0"), r.pop("task")), ["/carp_version", "/task"]),
        (lambda r: r.pop("request_id"), ["/request_id"]),
        (lambda r: r.update(request_id="not-a-uuid"), ["/request_id"]),
        (lambda r: r.update(timestamp="yesterday"), ["/timestamp"]),
        (lambda r: r.update(operation="delete"), ["/operation"]),
        (lambda r: r.update(operation="execute"), ["/execution"]),
        (lambda r: r.update(extra=1), ["/extra"]),
        (lambda r: r["requester"].update(agent_id=""), ["/requester/agent_id"]),
        (lambda r: r["requester"].update(agent_id="a" * 256), ["/requester/agent_id"]),
        (lambda r: r["requester"].update(role="admin"), ["/requester/role"]),
        (lambda r: r["task"].update(goal=""), ["/task/goal"]),
        (lambda r: r["task"].update(risk_tier="extreme"), ["/task/risk_tier"]),
        (lambda r: r["task"].update(priority=1), ["/task/priority"]),
    ],
)
def test_schema_faults_with_their_paths(h: Harness, mutate: Any, expected: list[str]) -> None:
    req = as_validate(h.resolve_request())
    mutate(req)
    report = h.rt.validate(req)
    assert report["valid"] is False
    assert sorted(paths(report)) == sorted(expected)
    assert all(e["message"] for e in report["errors"])


def test_every_schema_fault_at_once(h: Harness) -> None:
    report = h.rt.validate({"surprise": True})
    assert not report["valid"]
    assert set(paths(report)) == {
        "/surprise",
        "/carp_version",
        "/request_id",
        "/timestamp",
        "/operation",
        "/requester",
        "/task",
    }


@pytest.mark.parametrize("value", [5, "text", None, [1]])
def test_not_an_object(h: Harness, value: Any) -> None:
    report = h.rt.validate(value)
    assert report["valid"] is False
    assert paths(report) == [""]


def test_unknown_session(h: Harness) -> None:
    req = as_validate(h.resolve_request())
    req["requester"]["session_id"] = UNKNOWN
    report = h.rt.validate(req)
    assert paths(report) == ["/requester/session_id"]
    assert "not found" in report["errors"][0]["message"]


def test_ended_session(h: Harness) -> None:
    req = as_validate(h.resolve_request())
    h.rt.end_session(h.sid)
    assert paths(h.rt.validate(req)) == ["/requester/session_id"]


def test_clock_skew(h: Harness) -> None:
    report = h.rt.validate(as_validate(h.resolve_request(timestamp="2027-01-15T08:05:00.5Z")))
    assert paths(report) == ["/timestamp"]
    assert "300" in report["errors"][0]["message"]


def test_clock_skew_disabled() -> None:
    with Harness(clock_skew_seconds=None) as h:
        report = h.rt.validate(as_validate(h.resolve_request(timestamp="2020-01-01T00:00:00Z")))
        assert report["valid"]


def test_a_request_id_already_used_is_a_duplicate(h: Harness) -> None:
    res = h.resolve()
    report = h.rt.validate(as_validate(h.resolve_request(request_id=res.request_id)))
    assert paths(report) == ["/request_id"]
    assert "already" in report["errors"][0]["message"]


def test_validate_claims_no_request_id(h: Harness) -> None:
    req = h.resolve_request()
    assert h.rt.validate(as_validate(req))["valid"]
    assert h.rt.validate(as_validate(req))["valid"]
    res = h.rt.resolve(req)
    assert res.request_id == req["request_id"]


# -- executions -------------------------------------------------------------------------


def test_parameters_against_the_schema(h: Harness) -> None:
    h.resolve()
    report = check_execution(h, "api.call", {"path": 7, "retries": -1, "extra": 1})
    assert report["valid"] is False
    assert sorted(paths(report)) == [
        "/execution/parameters",
        "/execution/parameters/path",
        "/execution/parameters/retries",
    ]


def test_nested_parameter_paths(h: Harness) -> None:
    h.resolve()
    params = {"customer": {}, "lines": [{"sku": "a", "qty": "two"}]}
    report = check_execution(h, "order.place", params)
    assert sorted(paths(report)) == [
        "/execution/parameters/customer",
        "/execution/parameters/lines/0/qty",
    ]


def test_missing_parameters_are_at_the_parameters(h: Harness) -> None:
    h.resolve()
    report = check_execution(h, "api.call", {})
    assert paths(report) == ["/execution/parameters"]


def test_valid_parameters(h: Harness) -> None:
    h.resolve()
    assert check_execution(h, "api.call", {"path": "/fine", "retries": 3})["valid"]
    assert check_execution(h, "api.echo", {"anything": [1, 2]})["valid"]


def test_unknown_resolution(h: Harness) -> None:
    report = check_execution(h, "api.call", {"path": "/a"}, resolution=UNKNOWN)
    assert paths(report) == ["/execution/resolution_id"]


def test_resolution_of_another_session(h: Harness) -> None:
    other = h.session()
    theirs = h.resolve(other)
    report = check_execution(h, "api.call", {"path": "/a"}, resolution=theirs)
    assert paths(report) == ["/execution/resolution_id"]


def test_expired_resolution(h: Harness) -> None:
    h.resolve()
    h.clock.advance(3600)
    report = check_execution(h, "api.call", {"path": "/a"})
    assert paths(report) == ["/execution/resolution_id"]
    assert "expired" in report["errors"][0]["message"]


@pytest.mark.parametrize("action_id", ["db.drop", "not.listed"])
def test_action_not_allowed_by_the_resolution(h: Harness, action_id: str) -> None:
    h.resolve()
    report = check_execution(h, action_id, {})
    assert paths(report) == ["/execution/action_id"]
    message = report["errors"][0]["message"]
    assert action_id in message and not message.endswith("(at )")


def test_a_gated_action_is_valid(h: Harness) -> None:
    h.resolve()
    assert check_execution(h, "payment.refund", {"order_id": "o", "amount": 3})["valid"]
    assert h.rt.pending_approvals(h.sid) == []


# -- no state change --------------------------------------------------------------------


def test_only_the_request_received_event(h: Harness) -> None:
    h.resolve()
    n = h.count()
    req = as_validate(h.execute_request("api.call", {"path": 7}))
    report = h.rt.validate(req)
    assert not report["valid"]
    (event,) = h.events(start=n)
    assert event.event_type == "carp.request.received"
    assert event.payload == {
        "atlas_ids": [],
        "goal": h.goal,
        "operation": "validate",
        "request_id": req["request_id"],
    }
    assert event.parent_span_id == h.events()[0].span_id
    assert h.rt.verify(h.sid).valid


def test_request_received_echoes_what_the_request_gave(h: Harness) -> None:
    req = as_validate(
        h.resolve_request(
            risk_tier="high",
            context_hints=["refunds"],
            required_capabilities=["billing"],
            atlas_ids=["org.test.ops"],
        )
    )
    n = h.count()
    h.rt.validate(req)
    (event,) = h.events(start=n)
    assert event.payload == {
        "atlas_ids": ["org.test.ops"],
        "context_hints": ["refunds"],
        "goal": h.goal,
        "operation": "validate",
        "request_id": req["request_id"],
        "required_capabilities": ["billing"],
        "risk_tier": "high",
    }


def test_a_request_that_fails_the_schema_records_nothing(h: Harness) -> None:
    n = h.count()
    req = as_validate(h.resolve_request())
    req["carp_version"] = "2.0"
    assert not h.rt.validate(req)["valid"]
    assert h.count() == n


def test_a_request_of_an_unknown_session_records_nothing(h: Harness) -> None:
    n = h.count()
    req = as_validate(h.resolve_request())
    req["requester"]["session_id"] = UNKNOWN
    h.rt.validate(req)
    assert h.count() == n


def test_no_resolution_and_no_execution(h: Harness) -> None:
    calls = Calls()
    h.rt.register_executor("api.echo", calls)
    before = h.rt.validate(as_validate(h.resolve_request()))
    assert before["valid"]
    res = h.resolve()
    for _ in range(3):
        assert check_execution(h, "api.echo", {"n": 1})["valid"]
    assert calls.count == 0
    assert "action.requested" not in h.types()
    # Only the resolve made a resolution.
    assert h.types().count("carp.resolution.completed") == 1
    assert h.execute("api.echo", resolution=res).status == "success"


def test_no_limit_is_counted(h: Harness) -> None:
    h.resolve()
    for _ in range(5):
        assert check_execution(h, "api.call", {"path": "/a"})["valid"]
        assert check_execution(h, "credit.use", {})["valid"]
    assert [h.execute("api.call", {"path": "/a"}).status for _ in range(3)] == [
        "success",
        "success",
        "denied",
    ]
    assert [h.execute("credit.use").status for _ in range(3)] == ["success", "success", "denied"]


def test_validate_answers_after_many_requests(h: Harness) -> None:
    reports = [h.rt.validate(as_validate(h.resolve_request())) for _ in range(20)]
    assert all(r == {"valid": True, "errors": []} for r in reports)
    ids = [e.payload["request_id"] for e in h.events() if e.event_type == "carp.request.received"]
    assert len(set(ids)) == 20
    assert all(re.match(UUID_RE, i) for i in ids)
