"""Requests given as dicts are read straight from the Python objects; any
other Mapping takes the general path (convert to JSON, then check). Both
must accept and refuse exactly the same requests, with the same faults,
and resolve an accepted one the same way."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterator
from types import MappingProxyType
from typing import Any

import cra
import pytest
from cra import _core
from cra.errors import CraError
from cra.timing import ManualClock
from hypothesis import HealthCheck, given, settings
from resolve_helpers import RESOURCES, request
from test_bad_input import apply, mutation

MAX_DEPTH = 1000


def general(value: Any) -> Any:
    """The same request as a read-only Mapping, which the direct reader
    does not take (so the whole request goes the general way)."""
    return MappingProxyType(dict(value)) if isinstance(value, dict) else value


@pytest.fixture
def rt() -> Iterator[cra.Runtime]:
    runtime = cra.Runtime(atlases=[RESOURCES], clock=ManualClock(start=1_800_000_000.0))
    yield runtime
    runtime.close(timeout=10)


def fresh(rt: cra.Runtime, sid: str, **kw: Any) -> dict[str, Any]:
    return request(rt, sid, timestamp=rt.timestamp(), **kw)


def nested(depth: int) -> Any:
    node: Any = 1
    for _ in range(depth):
        node = {"k": node}
    return node


def outcome(rt: cra.Runtime, req: Any) -> Any:
    """A resolve's result without ids minted per call, or its error."""
    try:
        doc = rt.resolve(req).to_dict()
    except CraError as e:
        return ("error", e.code, e.path, str(e))
    for key in ("resolution_id", "request_id", "timestamp", "expires_at", "approval_id"):
        doc.pop(key, None)
    return ("ok", doc)


class StrSub(str):
    pass


class DictSub(dict):  # type: ignore[type-arg]
    pass


EDGE_CASES = {
    # keys that are not interned literals (as json.loads makes them)
    "json-roundtrip": lambda r: json.loads(json.dumps(r)),
    "tuple-lists": lambda r: {**r, "task": {**r["task"], "context_hints": ("a", "b")}},
    "str-subclass": lambda r: {**r, "task": {**r["task"], "goal": StrSub("Manage")}},
    "dict-subclass": lambda r: DictSub(r),
    "ordered-dict": lambda r: OrderedDict(r),
    "nulls": lambda r: {**r, "context": None, "atlas_ids": None, "execution": None},
    "context": lambda r: {**r, "context": {"a": [1, 2.5, None, True, {"b": "c"}], "n": 10**40}},
    # nesting at the limit counted from the request's root, and one past it
    "context-at-depth-limit": lambda r: {**r, "context": nested(MAX_DEPTH - 1)},
    "context-past-depth-limit": lambda r: {**r, "context": nested(MAX_DEPTH)},
    # a known key name in the wrong object is still an unknown key there
    "task-key-at-top": lambda r: {**r, "goal": "x"},
    "top-key-in-task": lambda r: {**r, "task": {**r["task"], "operation": "resolve"}},
    "requester-key-in-task": lambda r: {**r, "task": {**r["task"], "agent_id": "a"}},
    "non-string-key": lambda r: {**r, 1: "x"},
    "surrogate-goal": lambda r: {**r, "task": {**r["task"], "goal": "a\udc00"}},
    "bool-for-string": lambda r: {**r, "task": {**r["task"], "risk_tier": True}},
    "nan-in-context": lambda r: {**r, "context": {"x": float("nan")}},
    "set-in-context": lambda r: {**r, "context": {"x": {1, 2}}},
    "list-with-number": lambda r: {**r, "atlas_ids": ["org.cra.resources", 3]},
}


@pytest.mark.parametrize("case", sorted(EDGE_CASES), ids=str)
def test_direct_and_general_paths_agree(rt: cra.Runtime, case: str) -> None:
    sid = rt.create_session("agent-1", "Work")
    req = EDGE_CASES[case](fresh(rt, sid))
    other = dict(req)
    other["request_id"] = cra.CARPRequest.resolve(sid, "agent-1", "x")["request_id"]
    assert _core.check_request(req) == _core.check_request(general(req))
    assert outcome(rt, req) == outcome(rt, general(other))


def test_keys_in_the_wrong_object_are_reported_where_they_are(rt: cra.Runtime) -> None:
    sid = rt.create_session("agent-1", "Work")
    req = fresh(rt, sid)
    req["goal"] = "x"
    req["task"]["session_id"] = sid
    paths = [p for p, _ in _core.check_request(req)]
    assert paths == ["/goal", "/task/session_id"]


def test_depth_limit_counts_from_the_request_root(rt: cra.Runtime) -> None:
    sid = rt.create_session("agent-1", "Work")
    assert rt.resolve(fresh(rt, sid, context=nested(MAX_DEPTH - 1))).session_id == sid
    with pytest.raises(CraError) as e:
        rt.resolve(fresh(rt, sid, context=nested(MAX_DEPTH)))
    assert e.value.code == "INVALID_REQUEST"


def open_action(rt: cra.Runtime) -> None:
    """Loads an action whose schema takes any parameters (`blob.put`)."""
    from resolve_helpers import action, make_atlas, policy

    blob = action("blob.put", parameters_schema={"type": "object"})
    allow = policy("allow-blob", "allow", ["blob.*"])
    rt.load_atlas(make_atlas("org.test.blob", actions=[blob], policies=[allow]))


def test_execute_reads_dicts_directly_and_generally_alike(rt: cra.Runtime) -> None:
    open_action(rt)
    rt.register_executor("blob.put", lambda **p: {"got": p})
    sid = rt.create_session("agent-1", "Work")
    res = rt.resolve(fresh(rt, sid))
    answers = []
    for wrap in (lambda r: r, general, lambda r: json.loads(json.dumps(r))):
        req = cra.CARPRequest.execute(
            sid,
            "agent-1",
            "Manage",
            res.resolution_id,
            "blob.put",
            {"name": "r-1", "deep": {"a": [1, {"b": None}]}},
            timestamp=rt.timestamp(),
        )
        answers.append(rt.execute(wrap(req)).result)
    assert answers[0] == answers[1] == answers[2]
    assert answers[0] == {"got": {"name": "r-1", "deep": {"a": [1, {"b": None}]}}}


def test_generated_requests_get_the_same_faults_on_both_paths() -> None:
    with cra.Runtime(atlases=[RESOURCES]) as rt:
        sid = rt.create_session("agent-1", "Work")
        base = request(rt, sid)

        @settings(
            max_examples=300,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            database=None,
        )
        @given(mutation())
        def check(steps: Any) -> None:
            req = apply(base, steps)
            assert _core.check_request(req) == _core.check_request(general(req))

        check()


def test_executor_gets_the_requests_own_values_for_a_dict(rt: cra.Runtime) -> None:
    open_action(rt)
    seen: list[Any] = []
    rt.register_executor("blob.put", lambda **p: seen.append(p) or {"ok": True})
    sid = rt.create_session("agent-1", "Work")
    res = rt.resolve(fresh(rt, sid))
    tags = ("a", "b")
    for wrap in (lambda r: r, general):
        req = cra.CARPRequest.execute(
            sid,
            "agent-1",
            "Manage",
            res.resolution_id,
            "blob.put",
            {"name": "n", "tags": tags},
            timestamp=rt.timestamp(),
        )
        assert rt.execute(wrap(req)).status == "success"
    assert seen[0]["tags"] is tags
    assert seen[1]["tags"] == ["a", "b"]
