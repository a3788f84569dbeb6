"""The execute response (CARP §5): exactly the protocol keys, properties that
match to_dict, immutability, the HTTP status of each outcome, and results of
any JSON type.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from execute_helpers import (
    RESPONSE_KEYS,
    START_TS,
    Harness,
    ops_atlas,
)
from resolve_helpers import UUID_RE, action


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
