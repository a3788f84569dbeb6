"""Request faults of execute (CARP §5) are exceptions: invalid requests and
parameters that are not JSON, unknown or ended sessions, duplicate request
ids, clock skew, unknown and expired resolutions, idempotency conflicts, and
the events such a fault records.
"""

from __future__ import annotations

from typing import Any

import cra
import pytest
from cra.errors import ConflictError, ExpiredError, NotFoundError, ValidationError
from execute_helpers import (
    UNKNOWN,
    Harness,
)


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
