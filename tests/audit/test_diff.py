"""Diff (TRACE §7): two traces compared event by event, ignoring ids,
timestamps and hashes; differences as JSON pointers with a type and a
significance (durations and timings minor; decisions, actions, policies and
counts major), summed up as identical, semantically equivalent or divergent."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import cra
import pytest
from audit_helpers import (
    GOVERNED_OUTCOMES,
    as_dicts,
    governed_session,
    load_audit_cases,
    stricter_atlas,
    write_trace,
)
from cra.analysis import Difference, TraceDiff
from cra.errors import IntegrityError, NotFoundError
from execute_helpers import Harness

EVENT: dict[str, Any] = load_audit_cases("diff")[0]["a"][0]


def event(payload: dict[str, Any], event_type: str = "x.custom", **fields: Any) -> dict[str, Any]:
    e = copy.deepcopy(EVENT)
    e.update(event_type=event_type, payload=payload, **fields)
    return e


def summary(d: TraceDiff) -> list[tuple[str, str, str]]:
    return [(x.path, x.type, x.significance) for x in d.differences]


# -- the conformance cases ------------------------------------------------------------------


@pytest.mark.parametrize("case", load_audit_cases("diff"), ids=lambda c: c["id"])
def test_conformance_case(case: dict[str, Any]) -> None:
    assert cra.diff(case["a"], case["b"]).to_dict() == case["expect"]


def test_only_a_duration_differs() -> None:
    (case,) = [c for c in load_audit_cases("diff") if c["id"] == "diff-only-duration-differs"]
    d = cra.diff(case["a"], case["b"])
    assert d.compatibility == "semantically_equivalent"
    assert d.differences == [
        Difference(
            path="/0/payload/duration_ms",
            type="value_changed",
            significance="minor",
            before=1.25,
            after=3.5,
        )
    ]


# -- what is ignored ------------------------------------------------------------------------


def test_ids_timestamps_and_hashes_are_ignored() -> None:
    a = event({"action_id": "api.call", "request_id": "0193a0b0-0000-7000-8000-000000000001"})
    b = event(
        {"action_id": "api.call", "request_id": "0193a0b0-0000-7000-8000-0000000000ff"},
        event_id="0193a0b0-0000-7000-8000-0000000000aa",
        trace_id="0193a0b0-0000-7000-8000-0000000000bb",
        span_id="0193a0b0-0000-7000-8000-0000000000cc",
        parent_span_id=None,
        session_id="0193a0b0-0000-7000-8000-0000000000dd",
        sequence=7,
        timestamp="2030-01-01T00:00:00.000000Z",
        event_hash="f" * 64,
        previous_event_hash="e" * 64,
    )
    assert cra.diff([a], [b]) == TraceDiff("identical", [])


def test_an_id_that_is_not_minted_is_compared() -> None:
    a = event({"action_id": "api.call", "policy_id": "allow-ops"})
    b = event({"action_id": "api.call", "policy_id": "deny-all"})
    assert summary(cra.diff([a], [b])) == [("/0/payload/policy_id", "value_changed", "major")]


def test_two_runs_of_one_session_on_two_runtimes_are_equivalent() -> None:
    runs = []
    for _ in range(2):
        with Harness() as h:
            run = governed_session(h)
            assert run.outcomes == GOVERNED_OUTCOMES
            runs.append(run.events)
    a, b = runs
    assert {e.session_id for e in a}.isdisjoint({e.session_id for e in b})
    d = cra.diff(a, b)
    assert d.compatibility in ("identical", "semantically_equivalent")
    assert all(x.significance == "minor" for x in d.differences)
    assert all(x.type == "value_changed" for x in d.differences)
    assert all(x.path.endswith("/duration_ms") for x in d.differences)
    executed = {f"/{i}/payload/duration_ms" for i, e in enumerate(a) if "duration_ms" in e.payload}
    assert {x.path for x in d.differences} <= executed


# -- what matters -------------------------------------------------------------------------


def test_a_decision_change_is_major() -> None:
    traces = []
    for atlas in (None, stricter_atlas()):
        with Harness(*([atlas] if atlas else [])) as h:
            h.resolve()
            h.rt.flush()
            traces.append(h.events())
    d = cra.diff(*traces)
    assert d.compatibility == "divergent"
    echo = next(
        i
        for i, e in enumerate(traces[0])
        if e.event_type == "policy.evaluated" and e.payload["action_id"] == "api.echo"
    )
    got = {x.path: (x.type, x.significance, x.before, x.after) for x in d.differences}
    assert got[f"/{echo}/payload/result"] == ("value_changed", "major", "allow", "deny")
    assert got[f"/{echo}/payload/policy_id"] == ("value_changed", "major", "allow-ops", "no-echo")
    assert got[f"/{echo}/payload/reason"][:2] == ("added", "major")
    completed = len(traces[0]) - 1
    assert got[f"/{completed}/payload/allowed_count"] == ("value_changed", "major", 6, 5)
    assert got[f"/{completed}/payload/denied_count"] == ("value_changed", "major", 2, 3)


def test_a_changed_event_type_is_major() -> None:
    a = [event({"action_id": "api.call"}, "action.executed")]
    b = [event({"action_id": "api.call"}, "action.failed")]
    d = cra.diff(a, b)
    assert d.compatibility == "divergent"
    assert d.differences == [
        Difference("/0/event_type", "value_changed", "major", "action.executed", "action.failed")
    ]


@pytest.mark.parametrize(
    ("before", "after", "significance"),
    [
        ({"duration_ms": 1}, {"duration_ms": 2}, "minor"),
        ({"latency_us": 1.5}, {"latency_us": 2.5}, "minor"),
        ({"details": {"retry_after": 60.0}}, {"details": {"retry_after": 12.5}}, "minor"),
        ({"duration_ms": 0}, {"duration_ms": 0.0}, "minor"),
        ({"allowed_count": 3}, {"allowed_count": 4}, "major"),
        ({"decision_type": "allow"}, {"decision_type": "partial"}, "major"),
        ({"count": 1}, {"count": 1.0}, "major"),
        ({"flag": True}, {"flag": 1}, "major"),
        ({"v": None}, {"v": 0}, "major"),
    ],
)
def test_significance_of_a_changed_value(
    before: dict[str, Any], after: dict[str, Any], significance: str
) -> None:
    d = cra.diff([event(before)], [event(after)])
    (x,) = d.differences
    assert (x.type, x.significance) == ("value_changed", significance)
    assert d.compatibility == (
        "semantically_equivalent" if significance == "minor" else "divergent"
    )


def test_equal_numbers_are_equal() -> None:
    assert cra.diff([event({"n": 2.5})], [event({"n": 2.5})]).compatibility == "identical"
    assert cra.diff([event({"n": 10**20})], [event({"n": 10**20})]).compatibility == "identical"


def test_added_and_removed_events() -> None:
    one = event({"action_id": "api.call"}, "action.requested")
    two = event({"action_id": "api.call", "duration_ms": 1.0}, "action.executed")
    added = cra.diff([one], [one, two])
    assert added.compatibility == "divergent"
    assert added.differences == [Difference("/1", "added", "major", None, two)]
    removed = cra.diff([one, two], [one])
    assert removed.differences == [Difference("/1", "removed", "major", two, None)]
    assert summary(cra.diff([], [one, two])) == [("/0", "added", "major"), ("/1", "added", "major")]
    assert cra.diff([], []) == TraceDiff("identical", [])


def test_added_and_removed_payload_keys() -> None:
    a = event({"action_id": "api.call", "duration_ms": 1.0, "old": 1})
    b = event({"action_id": "api.call", "new": [1, 2]})
    assert summary(cra.diff([a], [b])) == [
        ("/0/payload/duration_ms", "removed", "minor"),
        ("/0/payload/old", "removed", "major"),
        ("/0/payload/new", "added", "major"),
    ]


def test_nested_paths_escape_tilde_and_slash() -> None:
    a = event({"a/b": {"c~d": [1, {"e~/f": "x"}], "keep": 1}})
    b = event({"a/b": {"c~d": [1, {"e~/f": "y"}, 3], "keep": 1}})
    assert summary(cra.diff([a], [b])) == [
        ("/0/payload/a~1b/c~0d/1/e~0~1f", "value_changed", "major"),
        ("/0/payload/a~1b/c~0d/2", "added", "major"),
    ]
    assert summary(cra.diff([b], [a])) == [
        ("/0/payload/a~1b/c~0d/1/e~0~1f", "value_changed", "major"),
        ("/0/payload/a~1b/c~0d/2", "removed", "major"),
    ]


def test_timings_inside_arrays_stay_minor() -> None:
    a = event({"samples_ms": [1.0, 2.0], "steps": [{"duration_ms": 1}]})
    b = event({"samples_ms": [1.0, 2.5], "steps": [{"duration_ms": 9}]})
    d = cra.diff([a], [b])
    assert d.compatibility == "semantically_equivalent"
    assert summary(d) == [
        ("/0/payload/samples_ms/1", "value_changed", "minor"),
        ("/0/payload/steps/0/duration_ms", "value_changed", "minor"),
    ]


def test_a_minor_and_a_major_difference_are_divergent() -> None:
    a = event({"duration_ms": 1, "result": "allow"})
    b = event({"duration_ms": 2, "result": "deny"})
    d = cra.diff([a], [b])
    assert d.compatibility == "divergent"
    assert sorted(x.significance for x in d.differences) == ["major", "minor"]


# -- inputs ---------------------------------------------------------------------------


def test_paths_events_dicts_and_json_text_diff_alike(tmp_path: Path) -> None:
    with Harness() as h:
        h.resolve()
        h.execute("api.call", {"path": "/a"})
        h.rt.flush()
        events = h.events()
    path = write_trace(tmp_path / "a.trace.jsonl", events)
    changed = as_dicts(events)
    changed[-1]["payload"]["duration_ms"] = 1234.5
    other = write_trace(tmp_path / "b.trace.jsonl", changed)
    expected = cra.diff(events, changed)
    assert expected.compatibility == "semantically_equivalent"
    assert cra.diff(path, other) == expected
    assert cra.diff(str(path), str(other)) == expected
    assert cra.diff(as_dicts(events), [json.dumps(e) for e in changed]) == expected
    assert cra.diff(path, events).compatibility == "identical"


def test_to_dict_is_the_protocol_shape() -> None:
    d = cra.diff([event({"duration_ms": 1})], [event({"duration_ms": 2})])
    assert d.to_dict() == {
        "compatibility": "semantically_equivalent",
        "differences": [
            {"path": "/0/payload/duration_ms", "type": "value_changed", "significance": "minor"}
        ],
    }


def test_bad_inputs_are_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        cra.diff(tmp_path / "missing.trace.jsonl", [])
    torn = tmp_path / "torn.trace.jsonl"
    torn.write_text('{"trace_version": "1.0"', encoding="utf-8")
    with pytest.raises(IntegrityError) as e:
        cra.diff(torn, [])
    assert e.value.code == "TRACE_TORN"
    with pytest.raises(IntegrityError) as e:
        cra.diff(["{not json"], [])
    assert e.value.code == "TRACE_INVALID"
