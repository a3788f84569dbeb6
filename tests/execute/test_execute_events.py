"""The trace events of execute: the events of each outcome with their exact
payload keys, one span under the root, timestamps from the clock, and the
parameter and result hashes.
"""

from __future__ import annotations

from typing import Any

import pytest
from execute_helpers import (
    OPS_ID,
    Harness,
    outcome_events,
    payload_of,
    value_hash,
)

RECEIVED_KEYS = {"action_id", "atlas_ids", "goal", "operation", "request_id", "resolution_id"}


REQUESTED_KEYS = {"action_id", "parameters_hash", "resolution_id"}


# -- events -----------------------------------------------------------------------------


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
