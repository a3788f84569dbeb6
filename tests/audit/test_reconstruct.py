"""State reconstruction (TRACE §7): a session's state rebuilt from its trace
alone — the session, its resolutions, executions (success, error, denied,
pending approval), approvals (granted or rejected, by whom, with what scope)
and the executions per action that limits count."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import cra
import pytest
from audit_helpers import GOVERNED_OUTCOMES, as_dicts, governed_session, write_trace
from cra.analysis import SessionState
from execute_helpers import START, START_TS, Harness

REFUND = {"order_id": "o-1", "amount": 20}


def ts(seconds: float) -> str:
    """The timestamp `seconds` after START."""
    return datetime.fromtimestamp(START + seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Scenario:
    """One session with every kind of execution outcome and both kinds of
    approval decision; the expectations are kept beside the steps."""

    def __init__(self, h: Harness) -> None:
        self.h = h

        def boom(**_: Any) -> None:
            raise RuntimeError("the echo is down")

        h.rt.register_executor("api.echo", boom)
        self.r1 = h.resolve()
        h.execute("api.call", {"path": "/a"})  # success
        h.clock.advance(1)
        h.execute("api.call", {"path": "/b"})  # success
        h.execute("api.call", {"path": "/c"})  # denied: rate limit
        h.execute("api.echo")  # error
        h.execute("db.drop")  # denied: policy
        h.clock.advance(1)
        h.execute("payment.refund", REFUND)  # pending approval
        assert self.r1.decision.approval_id is not None
        self.granted = h.rt.approve(self.r1.decision.approval_id, "alice", scope="resolution")
        h.execute("payment.refund", REFUND)  # success
        h.clock.advance(1)
        self.r2 = h.resolve()
        h.execute("payment.refund", {"order_id": "o-2", "amount": 5})  # pending approval
        assert self.r2.decision.approval_id is not None
        self.rejected = h.rt.reject(self.r2.decision.approval_id, "bob", note="no")
        h.execute("payment.refund", {"order_id": "o-2", "amount": 5})  # denied: rejected
        h.clock.advance(2)
        h.rt.end_session(h.sid, "completed")
        h.rt.flush()
        self.events = h.events()


@pytest.fixture(scope="module")
def scenario() -> Iterator[Scenario]:
    with Harness() as h:
        yield Scenario(h)


@pytest.fixture(scope="module")
def state(scenario: Scenario) -> SessionState:
    s = cra.reconstruct(scenario.events)
    assert isinstance(s, SessionState)
    return s


def test_the_session(scenario: Scenario, state: SessionState) -> None:
    h = scenario.h
    session_start = scenario.events[0]
    assert state.session == {
        "session_id": h.sid,
        "trace_id": session_start.trace_id,
        "agent_id": "agent-1",
        "goal": "Operate",
        "status": "ended",
        "started_at": START_TS,
        "ended_at": ts(5),
        "end_reason": "completed",
    }
    assert state.event_count == len(scenario.events)


def test_an_open_session_is_active() -> None:
    with Harness() as h:
        h.resolve()
        h.rt.flush()
        s = cra.reconstruct(h.events())
    assert isinstance(s, SessionState)
    assert s.session["status"] == "active"
    assert "ended_at" not in s.session and "end_reason" not in s.session


def test_resolutions(scenario: Scenario, state: SessionState) -> None:
    assert [r["resolution_id"] for r in state.resolutions] == [
        scenario.r1.resolution_id,
        scenario.r2.resolution_id,
    ]
    first, second = state.resolutions
    assert first["decision_type"] == scenario.r1.decision.type
    assert first["allowed_count"] == len(scenario.r1.allowed_actions)
    assert first["denied_count"] == len(scenario.r1.denied_actions)
    assert first["at"] == START_TS
    assert second["at"] == ts(3)
    # The full window shows in the second resolution.
    assert second["denied_count"] == first["denied_count"] + 1
    assert {"request_id", "context_block_count", "ttl_seconds"} <= set(first)


def test_executions_with_each_status(scenario: Scenario, state: SessionState) -> None:
    got = [(x["action_id"], x["status"]) for x in state.executions]
    assert got == [
        ("api.call", "success"),
        ("api.call", "success"),
        ("api.call", "denied"),
        ("api.echo", "error"),
        ("db.drop", "denied"),
        ("payment.refund", "pending_approval"),
        ("payment.refund", "success"),
        ("payment.refund", "pending_approval"),
        ("payment.refund", "denied"),
    ]
    by_status: dict[str, list[dict[str, Any]]] = {}
    for x in state.executions:
        by_status.setdefault(x["status"], []).append(x)
    first = by_status["success"][0]
    assert first["execution_id"] is not None
    assert isinstance(first["duration_ms"], float)
    assert first["at"] == START_TS
    assert by_status["success"][1]["at"] == ts(1)
    (error,) = by_status["error"]
    assert error["error_code"] == "EXECUTION_FAILED"
    rate, drop, rejected = by_status["denied"]
    assert (rate["policy_id"], rate["reason"]) == ("api-rate", "rate_limit_exceeded")
    assert rate["resolution_id"] == scenario.r1.resolution_id
    assert drop["policy_id"] == "never-drop"
    assert rejected["resolution_id"] == scenario.r2.resolution_id
    assert "bob" in rejected["reason"]
    waits = by_status["pending_approval"]
    assert [w["policy_id"] for w in waits] == ["refunds-need-a-human"] * 2
    assert [w["resolution_id"] for w in waits] == [
        scenario.r1.resolution_id,
        scenario.r2.resolution_id,
    ]


def test_approvals_granted_and_rejected(scenario: Scenario, state: SessionState) -> None:
    granted, rejected = state.approvals
    assert granted["granted"] is True
    assert granted["approver"] == "alice"
    assert granted["scope"] == "resolution"
    assert granted["approval_id"] == scenario.granted["approval_id"]
    assert granted["action_id"] == "payment.refund"
    assert granted["resolution_id"] == scenario.r1.resolution_id
    assert granted["parameters_hash"] == scenario.granted["parameters_hash"]
    assert granted["at"] == ts(2)
    assert rejected["granted"] is False
    assert rejected["approver"] == "bob"
    assert rejected["scope"] == "once"
    assert rejected["approval_id"] == scenario.rejected["approval_id"]
    assert rejected["note"] == "no"
    assert rejected["at"] == ts(3)


def test_execution_counts_per_action(state: SessionState) -> None:
    assert state.execution_counts == {
        "api.call": {"succeeded": 2, "failed": 0, "counted": 2},
        "api.echo": {"succeeded": 0, "failed": 1, "counted": 1},
        "payment.refund": {"succeeded": 1, "failed": 0, "counted": 1},
    }


def test_no_executor_is_an_error_that_does_not_count() -> None:
    with Harness(executors=False) as h:
        h.resolve()
        h.execute("api.call", {"path": "/a"})
        h.rt.flush()
        s = cra.reconstruct(h.events())
    assert isinstance(s, SessionState)
    (x,) = s.executions
    assert (x["action_id"], x["status"], x["error_code"]) == ("api.call", "error", "NO_EXECUTOR")
    assert x["counted"] is False
    assert s.execution_counts == {}


def test_limit_counters_of_a_governed_session() -> None:
    with Harness() as h:
        run = governed_session(h)
        assert run.outcomes == GOVERNED_OUTCOMES
        s = cra.reconstruct(run.events)
    assert isinstance(s, SessionState)
    assert {k: v["counted"] for k, v in s.execution_counts.items()} == {
        "api.call": 2,
        "credit.use": 2,
        "payment.refund": 1,
    }
    assert len(s.resolutions) == 4
    assert [a["approver"] for a in s.approvals] == ["alice"]


def test_several_sessions_give_a_list_in_order_of_appearance(tmp_path: Path) -> None:
    with Harness() as h:
        second = h.session("agent-2", goal="Other")
        third = h.session("agent-3")
        h.resolve(second)
        h.rt.end_session(third, "cancelled")
        h.rt.flush()
        events = sorted(
            as_dicts(h.rt.events(h.sid) + h.rt.events(second) + h.rt.events(third)),
            key=lambda e: e["timestamp"],
        )
        path = write_trace(tmp_path / "three.trace.jsonl", events)
        states = cra.reconstruct(path)
    assert isinstance(states, list)
    assert [s.session["session_id"] for s in states] == [h.sid, second, third]
    assert [s.session["agent_id"] for s in states] == ["agent-1", "agent-2", "agent-3"]
    assert states[1].session["goal"] == "Other"
    assert [len(s.resolutions) for s in states] == [0, 1, 0]
    assert states[2].session["status"] == "ended"
    assert states[2].session["end_reason"] == "cancelled"
    assert [s.event_count for s in states] == [1, len(h.rt.events(second)), 2]


def test_inputs_reconstruct_alike(scenario: Scenario, tmp_path: Path) -> None:
    path = write_trace(tmp_path / "run.trace.jsonl", scenario.events)
    expected = cra.reconstruct(scenario.events)
    assert cra.reconstruct(path) == expected
    assert cra.reconstruct(as_dicts(scenario.events)) == expected
    assert cra.reconstruct([e.to_json() for e in scenario.events]) == expected


def test_an_empty_trace_has_no_sessions() -> None:
    assert cra.reconstruct([]) == []
