"""Malformed input to `resolve`: every field with the wrong type, unknown
keys, oversized strings, bad UUIDs, unknown atlases, non-JSON values and
deep nesting each raise a `CraError` with a code and a JSON-pointer path;
a hypothesis test throws generated garbage and checks nothing else happens."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from typing import Any, Callable

import cra
import pytest
from cra.errors import CraError, NotFoundError, ValidationError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from resolve_helpers import RESOURCES, request

OTHER_UUID = "0193a0b0-0000-7000-8000-00000000beef"


@pytest.fixture
def rt() -> Iterator[cra.Runtime]:
    runtime = cra.Runtime(atlases=[RESOURCES])
    yield runtime
    runtime.close(timeout=10)


@pytest.fixture
def sid(rt: cra.Runtime) -> str:
    return rt.create_session("agent-1", "Work")


def set_at(req: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(req)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


def drop_at(req: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    out = copy.deepcopy(req)
    node = out
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return out


def expect_error(
    rt: cra.Runtime,
    sid: str,
    req: Any,
    path: str | None,
    code: str = "INVALID_REQUEST",
    event: bool = True,
) -> CraError:
    """`req` is rejected with `code` at `path`, leaving one error.occurred
    in the session it names (none when it names no readable session)."""
    before = rt.events(sid)
    with pytest.raises(CraError) as info:
        rt.resolve(req)
    err = info.value
    assert type(err) is not CraError  # always one of the category classes
    assert err.code == code, err
    assert isinstance(err.path, str)
    if path is not None:
        assert path in [f["path"] for f in err.errors], err.errors
    after = rt.events(sid)
    assert after[: len(before)] == before
    if not event:
        assert after == before
        return err
    assert [e.event_type for e in after[len(before) :]] == ["error.occurred"]
    assert after[-1].payload["code"] == code
    return err


Case = tuple[Callable[[dict[str, Any]], dict[str, Any]], str]

FIELD_CASES: dict[str, Case] = {
    # top level
    "carp_version float": (lambda r: set_at(r, ("carp_version",), 1.0), "/carp_version"),
    "carp_version 2.0": (lambda r: set_at(r, ("carp_version",), "2.0"), "/carp_version"),
    "carp_version missing": (lambda r: drop_at(r, ("carp_version",)), "/carp_version"),
    "request_id int": (lambda r: set_at(r, ("request_id",), 123), "/request_id"),
    "request_id not uuid": (lambda r: set_at(r, ("request_id",), "req-1"), "/request_id"),
    "request_id uuid with junk": (
        lambda r: set_at(r, ("request_id",), OTHER_UUID + "x"),
        "/request_id",
    ),
    "request_id missing": (lambda r: drop_at(r, ("request_id",)), "/request_id"),
    "timestamp int": (lambda r: set_at(r, ("timestamp",), 1700000000), "/timestamp"),
    "timestamp text": (lambda r: set_at(r, ("timestamp",), "now"), "/timestamp"),
    "timestamp missing": (lambda r: drop_at(r, ("timestamp",)), "/timestamp"),
    "operation unknown": (lambda r: set_at(r, ("operation",), "fly"), "/operation"),
    "operation list": (lambda r: set_at(r, ("operation",), ["resolve"]), "/operation"),
    "operation validate": (lambda r: set_at(r, ("operation",), "validate"), "/operation"),
    "operation execute with execution": (
        lambda r: set_at(
            set_at(r, ("operation",), "execute"),
            ("execution",),
            {"resolution_id": OTHER_UUID, "action_id": "resource.get", "parameters": {}},
        ),
        "/operation",
    ),
    "operation execute without execution": (
        lambda r: set_at(r, ("operation",), "execute"),
        "/execution",
    ),
    "execution not an object": (lambda r: set_at(r, ("execution",), "x"), "/execution"),
    "unknown top-level key": (lambda r: set_at(r, ("priority",), "urgent"), "/priority"),
    "unknown key with slash": (lambda r: set_at(r, ("a/b~c",), 1), "/a~1b~0c"),
    # requester
    "requester string": (lambda r: set_at(r, ("requester",), "agent-1"), "/requester"),
    "requester missing": (lambda r: drop_at(r, ("requester",)), "/requester"),
    "agent_id int": (lambda r: set_at(r, ("requester", "agent_id"), 7), "/requester/agent_id"),
    "agent_id empty": (lambda r: set_at(r, ("requester", "agent_id"), ""), "/requester/agent_id"),
    "agent_id 256": (
        lambda r: set_at(r, ("requester", "agent_id"), "a" * 256),
        "/requester/agent_id",
    ),
    "agent_id missing": (lambda r: drop_at(r, ("requester", "agent_id")), "/requester/agent_id"),
    "parent_session_id not uuid": (
        lambda r: set_at(r, ("requester", "parent_session_id"), "parent"),
        "/requester/parent_session_id",
    ),
    "parent_session_id int": (
        lambda r: set_at(r, ("requester", "parent_session_id"), 1),
        "/requester/parent_session_id",
    ),
    "unknown requester key": (
        lambda r: set_at(r, ("requester", "role"), "admin"),
        "/requester/role",
    ),
    # task
    "task list": (lambda r: set_at(r, ("task",), ["goal"]), "/task"),
    "task missing": (lambda r: drop_at(r, ("task",)), "/task"),
    "goal none": (lambda r: set_at(r, ("task", "goal"), None), "/task/goal"),
    "goal int": (lambda r: set_at(r, ("task", "goal"), 5), "/task/goal"),
    "goal empty": (lambda r: set_at(r, ("task", "goal"), ""), "/task/goal"),
    "goal 10001": (lambda r: set_at(r, ("task", "goal"), "g" * 10_001), "/task/goal"),
    "goal missing": (lambda r: drop_at(r, ("task", "goal")), "/task/goal"),
    "risk_tier unknown": (lambda r: set_at(r, ("task", "risk_tier"), "extreme"), "/task/risk_tier"),
    "risk_tier upper case": (lambda r: set_at(r, ("task", "risk_tier"), "HIGH"), "/task/risk_tier"),
    "risk_tier int": (lambda r: set_at(r, ("task", "risk_tier"), 3), "/task/risk_tier"),
    "context_hints string": (
        lambda r: set_at(r, ("task", "context_hints"), "hint"),
        "/task/context_hints",
    ),
    "context_hints item": (
        lambda r: set_at(r, ("task", "context_hints"), ["ok", 1]),
        "/task/context_hints/1",
    ),
    "capabilities dict": (
        lambda r: set_at(r, ("task", "required_capabilities"), {"read": True}),
        "/task/required_capabilities",
    ),
    "capabilities item": (
        lambda r: set_at(r, ("task", "required_capabilities"), [None]),
        "/task/required_capabilities/0",
    ),
    "unknown task key": (lambda r: set_at(r, ("task", "deadline"), "soon"), "/task/deadline"),
    # atlas_ids, context
    "atlas_ids string": (lambda r: set_at(r, ("atlas_ids",), "org.cra.resources"), "/atlas_ids"),
    "atlas_ids item": (
        lambda r: set_at(r, ("atlas_ids",), ["org.cra.resources", 2]),
        "/atlas_ids/1",
    ),
    "context list": (lambda r: set_at(r, ("context",), [1, 2]), "/context"),
    "context string": (lambda r: set_at(r, ("context",), "ctx"), "/context"),
    "context nan": (lambda r: set_at(r, ("context",), {"score": float("nan")}), "/context/score"),
    "context inf": (lambda r: set_at(r, ("context",), {"a": [1, -math.inf]}), "/context/a/1"),
    "context int key": (lambda r: set_at(r, ("context",), {"a": {1: "x"}}), "/context/a"),
    "context set": (lambda r: set_at(r, ("context",), {"tags": {"a"}}), "/context/tags"),
    "context bytes": (lambda r: set_at(r, ("context",), {"raw": b"\x00"}), "/context/raw"),
    "context object": (lambda r: set_at(r, ("context",), {"o": object()}), "/context/o"),
    "goal lone surrogate": (lambda r: set_at(r, ("task", "goal"), "bad \ud800"), "/task/goal"),
}


#: Cases whose request names no readable session: no event anywhere.
NO_SESSION = {"requester string", "requester missing"}


@pytest.mark.parametrize("case", sorted(FIELD_CASES), ids=str)
def test_field_errors(rt: cra.Runtime, sid: str, case: str) -> None:
    mutate, path = FIELD_CASES[case]
    err = expect_error(rt, sid, mutate(request(rt, sid)), path, event=case not in NO_SESSION)
    assert isinstance(err, ValidationError) and err.http_status == 400


def test_many_faults_are_reported_together(rt: cra.Runtime, sid: str) -> None:
    req = request(rt, sid)
    req["carp_version"] = "9"
    req["task"] = {"goal": "", "risk_tier": "x", "extra": 1}
    req["requester"]["role"] = "x"
    req["bonus"] = True
    err = expect_error(rt, sid, req, None)
    assert sorted(f["path"] for f in err.errors) == [
        "/bonus",
        "/carp_version",
        "/requester/role",
        "/task/extra",
        "/task/goal",
        "/task/risk_tier",
    ]


def test_session_id_errors_have_a_path_and_no_event(rt: cra.Runtime, sid: str) -> None:
    rt.flush()
    before = rt.stats()["recorded"]
    for value, path in [
        (None, "/requester/session_id"),
        (5, "/requester/session_id"),
        ("nope", "/requester/session_id"),
    ]:
        req = set_at(request(rt, sid), ("requester", "session_id"), value)
        with pytest.raises(ValidationError) as info:
            rt.resolve(req)
        assert info.value.path == path
    req = drop_at(request(rt, sid), ("requester", "session_id"))
    with pytest.raises(ValidationError) as info:
        rt.resolve(req)
    assert info.value.path == "/requester/session_id"
    rt.flush()
    assert rt.stats()["recorded"] == before


def test_longest_accepted_strings(rt: cra.Runtime, sid: str) -> None:
    # A request speaks for its session's agent, so the longest agent id is
    # the session's own.
    long_sid = rt.create_session("a" * 255, "Work")
    req = request(rt, long_sid, "g" * 10_000)
    assert req["requester"]["agent_id"] == "a" * 255
    assert rt.resolve(req).decision.type == "partial"
    # Lengths are in characters, not bytes.
    wide_sid = rt.create_session("ü" * 255, "Work")
    req = request(rt, wide_sid, "é" * 10_000)
    assert req["requester"]["agent_id"] == "ü" * 255
    rt.resolve(req)
    expect_error(rt, sid, request(rt, sid, "é" * 10_001), "/task/goal")


def test_huge_goal_is_rejected_not_crashing(rt: cra.Runtime, sid: str) -> None:
    expect_error(rt, sid, request(rt, sid, "x" * 5_000_000), "/task/goal")


def test_unknown_atlas_ids(rt: cra.Runtime, sid: str) -> None:
    for ids in (["org.cra.resources", "org.cra.nowhere"], ["Not An Id"]):
        before = rt.events(sid)
        with pytest.raises(NotFoundError) as info:
            rt.resolve(request(rt, sid, atlas_ids=ids))
        err = info.value
        assert (err.code, err.http_status) == ("ATLAS_NOT_FOUND", 404)
        assert ids[-1] in err.message
        after = rt.events(sid)
        assert [e.event_type for e in after[len(before) :]] == ["error.occurred"]
        assert after[-1].payload["code"] == "ATLAS_NOT_FOUND"


def test_unknown_atlas_id_names_its_position(rt: cra.Runtime, sid: str) -> None:
    with pytest.raises(NotFoundError) as info:
        rt.resolve(request(rt, sid, atlas_ids=["org.cra.resources", "org.cra.nowhere"]))
    assert info.value.path == "/atlas_ids/1"


def test_empty_atlas_ids_means_no_candidates(rt: cra.Runtime, sid: str) -> None:
    """Code's choice: `atlas_ids: []` names no atlas (not "all")."""
    res = rt.resolve(request(rt, sid, atlas_ids=[]))
    assert res.decision.reason == "No actions matched the request"


@pytest.mark.parametrize(
    "req",
    [
        None,
        [],
        ["a"],
        "request",
        42,
        1.5,
        True,
        b"{}",
        {"a", "b"},
        object(),
        ({"carp_version": "1.0"},),
    ],
    ids=[
        "none",
        "empty-list",
        "list",
        "str",
        "int",
        "float",
        "bool",
        "bytes",
        "set",
        "object",
        "tuple",
    ],
)
def test_non_dict_request(rt: cra.Runtime, req: Any) -> None:
    rt.flush()
    before = rt.stats()["recorded"]
    with pytest.raises(CraError) as info:
        rt.resolve(req)
    assert info.value.code == "INVALID_REQUEST"
    assert info.value.path == ""
    rt.flush()
    assert rt.stats()["recorded"] == before


def _deep(depth: int, leaf: Any = 1) -> Any:
    node: Any = leaf
    for _ in range(depth):
        node = {"k": node}
    return node


def test_deeply_nested_context(rt: cra.Runtime, sid: str) -> None:
    err = expect_error(rt, sid, request(rt, sid, context=_deep(10_000)), None)
    assert err.path.startswith("/context/k/k/k")
    lists: Any = []
    for _ in range(10_000):
        lists = [lists]
    expect_error(rt, sid, set_at(request(rt, sid), ("context",), {"l": lists}), None)
    loop: dict[str, Any] = {}
    loop["self"] = loop
    expect_error(rt, sid, request(rt, sid, context=loop), None)


def test_moderately_nested_context_is_fine(rt: cra.Runtime, sid: str) -> None:
    assert rt.resolve(request(rt, sid, context=_deep(500))).decision.type == "partial"


def test_big_integers_and_odd_numbers_in_context(rt: cra.Runtime, sid: str) -> None:
    ctx = {"big": 10**40, "neg": -(10**30), "tiny": 1e-300, "zero": -0.0}
    assert rt.resolve(request(rt, sid, context=ctx)).decision.type == "partial"


def test_mapping_that_is_not_a_dict_is_accepted(rt: cra.Runtime, sid: str) -> None:
    """`Runtime.resolve` takes a Mapping; any Mapping is read like a dict."""
    from collections import OrderedDict
    from types import MappingProxyType

    req = request(rt, sid)
    req["task"] = MappingProxyType(req["task"])
    assert rt.resolve(MappingProxyType(req)).decision.type == "partial"
    assert rt.resolve(OrderedDict(request(rt, sid))).decision.type == "partial"


# -- generated garbage ----------------------------------------------------------------------

SURROGATES = st.sampled_from(["\ud800", "a\udfffb", "\udbff\udc00"])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    SURROGATES,
    st.sampled_from(
        ["1.0", "resolve", "low", "high", "org.cra.resources", OTHER_UUID, "2026-01-01T00:00:00Z"]
    ),
)
JSONISH = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=12), st.integers()), inner, max_size=4),
        st.tuples(inner, inner),
    ),
    max_leaves=12,
)
HUGE = st.sampled_from(["x" * 10_001, "y" * 300, "z" * 100_000])
PATHS = [
    ("carp_version",),
    ("request_id",),
    ("timestamp",),
    ("operation",),
    ("requester",),
    ("requester", "agent_id"),
    ("requester", "session_id"),
    ("requester", "parent_session_id"),
    ("task",),
    ("task", "goal"),
    ("task", "risk_tier"),
    ("task", "context_hints"),
    ("task", "required_capabilities"),
    ("atlas_ids",),
    ("context",),
    ("execution",),
    ("surprise",),
    ("requester", "surprise"),
    ("task", "surprise"),
]


@st.composite
def mutation(draw: st.DrawFn) -> list[tuple[str, tuple[str, ...], Any]]:
    steps = []
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        path = draw(st.sampled_from(PATHS))
        kind = draw(st.sampled_from(["drop", "set", "huge"]))
        value = draw(HUGE) if kind == "huge" else draw(JSONISH) if kind == "set" else None
        steps.append((kind, path, value))
    return steps


def apply(req: dict[str, Any], steps: list[tuple[str, tuple[str, ...], Any]]) -> Any:
    out: Any = copy.deepcopy(req)
    for kind, path, value in steps:
        node = out
        for key in path[:-1]:
            if not isinstance(node, dict) or not isinstance(node.get(key), dict):
                node = None
                break
            node = node[key]
        if not isinstance(node, dict):
            continue
        if kind == "drop":
            node.pop(path[-1], None)
        else:
            node[path[-1]] = value
    return out


GARBAGE = st.one_of(
    JSONISH,
    st.dictionaries(
        st.sampled_from(["carp_version", "request_id", "task", "requester", "x"]),
        JSONISH,
        max_size=6,
    ),
)


def test_generated_garbage_only_raises_cra_errors() -> None:
    with cra.Runtime(atlases=[RESOURCES]) as rt:
        sid = rt.create_session("agent-1", "Work")
        state = {"events": len(rt.events(sid)), "resolutions": 0}

        def check(req: Any) -> None:
            try:
                res = rt.resolve(req)
            except CraError as e:
                assert isinstance(e.code, str) and e.code.isupper()
                assert e.path is None or isinstance(e.path, str)
                events = rt.events(sid)
                new = events[state["events"] :]
                assert [x.event_type for x in new] in ([], ["error.occurred"]), new
                state["events"] = len(events)
            else:
                # A mutation may still be a valid request: then it is one full resolve.
                events = rt.events(sid)
                new = [x.event_type for x in events[state["events"] :]]
                assert new[0] == "carp.request.received" and new[-1] == "carp.resolution.completed"
                assert res.session_id == sid
                state["events"] = len(events)
                state["resolutions"] += 1
            completed = [e for e in rt.events(sid) if e.event_type == "carp.resolution.completed"]
            assert len(completed) == state["resolutions"]

        @settings(
            max_examples=300,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            database=None,
        )
        @given(
            data=st.one_of(
                mutation().map(lambda m: ("mutate", m)), GARBAGE.map(lambda g: ("raw", g))
            )
        )
        def run(data: tuple[str, Any]) -> None:
            kind, value = data
            if kind == "mutate":
                check(apply(request(rt, sid), value))
            else:
                check(value)

        run()
        assert rt.verify(sid).valid
        assert rt.get_session(sid)["status"] == "active"
