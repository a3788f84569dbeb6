"""Replay (TRACE §7): every recorded resolve re-run against atlases at the
recorded clock readings, with rate-limit and budget state rebuilt from the
recorded executions, compared on decision type, counts and each
`policy.evaluated` outcome."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cra
import pytest
from audit_helpers import (
    GOVERNED_OUTCOMES,
    GovernedRun,
    as_dicts,
    governed_session,
    span_events,
    stricter_atlas,
    tear,
    write_atlas,
    write_trace,
)
from cra.analysis import ReplayReport
from cra.errors import IntegrityError, NotFoundError
from execute_helpers import Harness, code, ops_atlas


@pytest.fixture(scope="module")
def governed() -> Iterator[GovernedRun]:
    with Harness() as h:
        run = governed_session(h)
        assert run.outcomes == GOVERNED_OUTCOMES
        yield run


def evaluated(run_events: list[cra.TRACEEvent], sequence: int) -> dict[str, dict[str, Any]]:
    """`policy.evaluated` payloads of one resolve, by action."""
    return {
        e["payload"]["action_id"]: e["payload"]
        for e in span_events(run_events, sequence)
        if e["event_type"] == "policy.evaluated"
    }


def resolve_sequences(events: list[cra.TRACEEvent]) -> list[int]:
    return [
        e.sequence
        for e in events
        if e.event_type == "carp.request.received" and e.payload["operation"] == "resolve"
    ]


# -- the same atlas reproduces every decision ---------------------------------------------


def test_the_same_atlas_reproduces_every_request(governed: GovernedRun) -> None:
    events = governed.events
    report = cra.replay(events, [ops_atlas()])
    assert report.identical
    assert len(report.requests) == 4
    assert (report.matched, report.mismatched) == (4, 0)
    assert all(r.matches and r.mismatches == [] and r.error is None for r in report.requests)
    assert [r.request_id for r in report.requests] == [
        e.payload["request_id"] for e in events if e.sequence in resolve_sequences(events)
    ]
    assert [r.sequence for r in report.requests] == resolve_sequences(events)
    assert {r.session_id for r in report.requests} == {governed.harness.sid}
    # Two API calls, two credits and one refund ran; denials and the wait did not.
    assert report.executions_counted == 5


def test_the_recorded_limits_are_what_replay_reproduces(governed: GovernedRun) -> None:
    """The trace really does hold a full window, a spent budget and a window
    that slid open again — so matching needed the rebuilt state."""
    events = governed.events
    r1, r2, r3, r4 = resolve_sequences(events)
    assert evaluated(events, r1)["api.call"]["result"] == "allow"
    assert evaluated(events, r2)["api.call"] == {
        "action_id": "api.call",
        "policy_id": "api-rate",
        "reason": "rate_limit_exceeded",
        "result": "deny",
    }
    assert evaluated(events, r2)["credit.use"]["result"] == "allow"
    assert evaluated(events, r3)["credit.use"]["reason"] == "budget_exceeded"
    assert evaluated(events, r3)["credit.transfer"]["reason"] == "budget_exceeded"
    assert evaluated(events, r4)["api.call"]["result"] == "allow"
    assert cra.replay(events, [ops_atlas()]).identical


def test_without_its_executions_the_full_window_is_not_reproduced(
    governed: GovernedRun,
) -> None:
    events = as_dicts(governed.events)
    stripped = [e for e in events if e["event_type"] != "action.executed"]
    report = cra.replay(stripped, [ops_atlas()])
    assert report.executions_counted == 0
    assert not report.identical
    first, second, third, fourth = report.requests
    assert first.matches
    assert not second.matches
    api = next(m for m in second.mismatches if m["recorded"] and m["field"].startswith("policy"))
    assert api["recorded"] == {"action_id": "api.call", "policy_id": "api-rate", "result": "deny"}
    assert api["replayed"] == {"action_id": "api.call", "policy_id": "allow-ops", "result": "allow"}
    # A budget never refills: both later resolves saw it spent.
    for later in (third, fourth):
        assert not later.matches
        assert {"allowed_count", "denied_count"} <= {m["field"] for m in later.mismatches}


def test_a_resolve_after_a_full_window_is_replayed_as_denied() -> None:
    with Harness(ops_atlas(rate=(1, 60))) as h:
        h.resolve()
        assert h.execute("api.call", {"path": "/a"}).status == "success"
        h.clock.advance(59)
        full = h.resolve()
        assert "api.call" in full.denied_action_ids
        h.clock.advance(1)
        assert "api.call" in h.resolve().allowed_action_ids
        h.rt.flush()
        report = cra.replay(h.events(), [ops_atlas(rate=(1, 60))])
    assert report.identical
    assert [r.matches for r in report.requests] == [True, True, True]
    assert report.executions_counted == 1


def test_failures_count_toward_limits_on_replay() -> None:
    def boom(**_: Any) -> None:
        raise RuntimeError("down")

    with Harness() as h:
        h.rt.register_executor("api.call", boom)
        h.resolve()
        statuses = [h.execute("api.call", {"path": "/a"}).status for _ in range(3)]
        assert statuses == ["error", "error", "denied"]
        assert "api.call" in h.resolve().denied_action_ids
        h.rt.flush()
        report = cra.replay(h.events(), [ops_atlas()])
    assert report.identical
    assert report.executions_counted == 2


def test_no_executor_failures_do_not_count() -> None:
    with Harness(executors=False) as h:
        h.resolve()
        for _ in range(3):
            assert code(h.execute("api.call", {"path": "/a"})) == "NO_EXECUTOR"
            assert code(h.execute("credit.use")) == "NO_EXECUTOR"
        again = h.resolve()
        assert {"api.call", "credit.use"} <= set(again.allowed_action_ids)
        h.rt.flush()
        events = h.events()
    assert sum(e.event_type == "action.failed" for e in events) == 6
    report = cra.replay(events, [ops_atlas()])
    assert report.identical
    assert report.executions_counted == 0


def test_limits_are_kept_per_session_on_replay() -> None:
    with Harness() as h:
        other = h.session()
        h.resolve()
        h.resolve(other)
        for _ in range(2):
            h.execute("api.call", {"path": "/a"})
        assert "api.call" in h.resolve().denied_action_ids
        assert "api.call" in h.resolve(other).allowed_action_ids
        h.rt.flush()
        interleaved = sorted(
            as_dicts(h.rt.events(h.sid) + h.rt.events(other)),
            key=lambda e: (e["timestamp"], e["session_id"] != h.sid, e["sequence"]),
        )
    report = cra.replay(interleaved, [ops_atlas()])
    assert report.identical
    assert {r.session_id for r in report.requests} == {h.sid, other}
    assert len(report.requests) == 4


# -- a changed atlas ---------------------------------------------------------------------


def test_a_stricter_atlas_reports_field_recorded_and_replayed(governed: GovernedRun) -> None:
    events = governed.events
    report = cra.replay(events, [stricter_atlas()])
    assert not report.identical
    assert report.mismatched == 4
    first = report.requests[0]
    assert first.request_id == events[resolve_sequences(events)[0]].payload["request_id"]
    assert first.error is None
    span = span_events(events, first.sequence)
    completed = next(e for e in span if e["event_type"] == "carp.resolution.completed")["payload"]
    actions = [e["payload"]["action_id"] for e in span if e["event_type"] == "policy.evaluated"]
    echo = actions.index("api.echo")
    assert first.mismatches == [
        {
            "field": "allowed_count",
            "recorded": completed["allowed_count"],
            "replayed": completed["allowed_count"] - 1,
        },
        {
            "field": "denied_count",
            "recorded": completed["denied_count"],
            "replayed": completed["denied_count"] + 1,
        },
        {
            "field": f"policy.evaluated/{echo}",
            "recorded": {"action_id": "api.echo", "policy_id": "allow-ops", "result": "allow"},
            "replayed": {"action_id": "api.echo", "policy_id": "no-echo", "result": "deny"},
        },
    ]


def test_a_changed_decision_type_is_reported() -> None:
    with Harness() as h:
        res = h.resolve()
        assert res.decision.type == "partial"
        h.rt.flush()
        events = h.events()
    open_atlas = ops_atlas()
    open_atlas["policies"] = [p for p in open_atlas["policies"] if p["type"] == "allow"]
    open_atlas["policies"][0]["actions"] = ["*"]
    report = cra.replay(events, [open_atlas])
    (req,) = report.requests
    decision = next(m for m in req.mismatches if m["field"] == "decision_type")
    assert decision == {"field": "decision_type", "recorded": "partial", "replayed": "allow"}


def test_a_missing_atlas_is_reported_per_request(governed: GovernedRun) -> None:
    other = ops_atlas(atlas_id="org.test.other")
    report = cra.replay(governed.events, [other])
    assert not report.identical
    assert all(not r.matches for r in report.requests)
    assert all(r.error and "ATLAS_NOT_FOUND" in r.error for r in report.requests)


def test_a_trace_without_its_session_start_is_reported(governed: GovernedRun) -> None:
    events = as_dicts(governed.events)[1:]
    report = cra.replay(events, [ops_atlas()])
    assert not report.identical
    assert all(r.error and "session.started" in r.error for r in report.requests)


# -- inputs -----------------------------------------------------------------------------


def test_a_path_a_list_of_events_and_a_list_of_dicts_replay_alike(
    governed: GovernedRun, tmp_path: Path
) -> None:
    events = governed.events
    path = write_trace(tmp_path / "run.trace.jsonl", events)
    atlas_file = write_atlas(tmp_path / "atlas.json", ops_atlas())
    reports = [
        cra.replay(path, [atlas_file]),
        cra.replay(str(path), [str(atlas_file)]),
        cra.replay(events, [ops_atlas()]),
        cra.replay(as_dicts(events), [ops_atlas()]),
        cra.replay([e.to_json() for e in events], [ops_atlas()]),
    ]
    assert all(r == reports[0] for r in reports)
    assert reports[0].identical


def test_a_torn_file_is_refused(governed: GovernedRun, tmp_path: Path) -> None:
    path = write_trace(tmp_path / "run.trace.jsonl", governed.events)
    tear(path)
    with pytest.raises(IntegrityError) as e:
        cra.replay(path, [ops_atlas()])
    assert e.value.code == "TRACE_TORN"
    assert e.value.category == "integrity"


def test_a_line_that_is_not_an_event_is_refused(governed: GovernedRun, tmp_path: Path) -> None:
    lines = [e.to_json() for e in governed.events]
    lines.insert(3, "not json")
    path = tmp_path / "bad.trace.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(IntegrityError) as e:
        cra.replay(path, [ops_atlas()])
    assert e.value.code == "TRACE_INVALID"
    broken = as_dicts(governed.events)
    del broken[2]["timestamp"]
    with pytest.raises(IntegrityError):
        cra.replay(broken, [ops_atlas()])


def test_a_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError) as e:
        cra.replay(tmp_path / "nowhere.trace.jsonl", [ops_atlas()])
    assert e.value.code == "FILE_NOT_FOUND"


def test_an_empty_trace_replays_to_nothing() -> None:
    report = cra.replay([], [ops_atlas()])
    assert report.identical
    assert (report.requests, report.executions_counted) == ([], 0)


# -- context blocks (issue 13, finding 7) ------------------------------------------------

GUIDE = {"pack_id": "guide", "content": "Read this first."}
NOTES = {"pack_id": "notes", "content": "Then these notes.", "priority": 5}


def _recorded_with_context() -> list[cra.TRACEEvent]:
    with Harness(ops_atlas(context_packs=[GUIDE, NOTES])) as h:
        h.resolve()
        h.rt.flush()
        return h.events()


def _context_mismatches(report: ReplayReport) -> list[dict[str, Any]]:
    (req,) = report.requests
    return [m for m in req.mismatches if m["field"].startswith("context")]


def test_the_same_context_replays_identically() -> None:
    events = _recorded_with_context()
    injected = [e.payload["block_id"] for e in events if e.event_type == "context.injected"]
    assert injected == ["notes", "guide"]
    assert cra.replay(events, [ops_atlas(context_packs=[GUIDE, NOTES])]).identical


def test_changed_context_content_is_a_difference() -> None:
    events = _recorded_with_context()
    longer = dict(GUIDE, content="Read this first, and then read it again twice over.")
    report = cra.replay(events, [ops_atlas(context_packs=[longer, NOTES])])
    assert not report.identical
    assert _context_mismatches(report) == [
        {
            "field": "context.injected/1",
            "recorded": {"block_id": "guide", "token_count": 4},
            "replayed": {"block_id": "guide", "token_count": 13},
        }
    ]


def test_changed_context_ids_and_order_are_differences() -> None:
    events = _recorded_with_context()
    renamed = dict(GUIDE, pack_id="handbook", priority=9)
    report = cra.replay(events, [ops_atlas(context_packs=[renamed])])
    assert not report.identical
    assert _context_mismatches(report) == [
        {"field": "context_block_count", "recorded": 2, "replayed": 1},
        {
            "field": "context.injected/0",
            "recorded": {"block_id": "notes", "token_count": 5},
            "replayed": {"block_id": "handbook", "token_count": 4},
        },
        {
            "field": "context.injected/1",
            "recorded": {"block_id": "guide", "token_count": 4},
            "replayed": None,
        },
    ]
