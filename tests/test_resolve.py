"""Resolve end to end: the golden worked case (resolution and its 9 trace
events), spans, context packs, the capability filter, TTLs, the Python
resolution objects, the `cra.fast` path, and atomic atlas replacement under
concurrent resolves."""

from __future__ import annotations

import dataclasses
import json
import re
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import cra
import pytest
from cra.errors import NotFoundError, ValidationError
from resolve_helpers import (
    GUARD,
    PAYMENTS,
    PRIORITIES,
    RESOURCES,
    UUID_RE,
    action,
    brief,
    make_atlas,
    new_session,
    policy,
    request,
)

TIMESTAMP_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
GOLDEN_GOAL = "Manage resources in the test environment"
GOLDEN_REQUEST_ID = "0193a0b0-0000-7000-8000-000000000001"
OVERVIEW = (
    "# Resources\n\nA resource has an id, a name and some data. Read it before you change it.\n"
)


@pytest.fixture
def rt() -> Iterator[cra.Runtime]:
    runtime = cra.Runtime()
    yield runtime
    runtime.close(timeout=10)


def parse_ts(text: str) -> datetime:
    assert TIMESTAMP_RE.match(text), text
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")


def is_uuid7(text: str | None) -> bool:
    return text is not None and re.match(UUID_RE, text) is not None and text[14] == "7"


def inline_atlas(atlas_id: str, packs: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    return make_atlas(atlas_id, context_packs=packs, **kw)


def pack(pack_id: str, content: str, priority: int | None = None, **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"pack_id": pack_id, "name": pack_id.title(), "content": content}
    if priority is not None:
        out["priority"] = priority
    out.update(kw)
    return out


def block_ids(res: cra.CARPResolution) -> list[str]:
    return [b.block_id for b in res.context_blocks]


# -- the golden worked case ------------------------------------------------------------

GOLDEN_ALLOWED = [
    {
        "action_id": "resource.get",
        "name": "Get",
        "description": "Fetch one resource",
        "parameters_schema": {
            "type": "object",
            "required": ["resource_id"],
            "properties": {"resource_id": {"type": "string"}},
            "additionalProperties": False,
        },
        "returns_schema": None,
        "risk_tier": "low",
        "requires_confirmation": False,
        "idempotent": True,
    },
    {
        "action_id": "resource.list",
        "name": "List",
        "description": "List resources",
        "parameters_schema": {
            "type": "object",
            "properties": {"limit": {"type": "integer", "minimum": 1, "maximum": 100}},
        },
        "returns_schema": None,
        "risk_tier": "low",
        "requires_confirmation": False,
        "idempotent": True,
    },
    {
        "action_id": "resource.create",
        "name": "Create",
        "description": "Make a resource",
        "parameters_schema": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string", "minLength": 1}},
        },
        "returns_schema": None,
        "risk_tier": "medium",
        "requires_confirmation": False,
        "idempotent": False,
    },
    {
        "action_id": "resource.update",
        "name": "Update",
        "description": "Change a resource",
        "parameters_schema": {
            "type": "object",
            "required": ["resource_id"],
            "properties": {"resource_id": {"type": "string"}, "name": {"type": "string"}},
        },
        "returns_schema": None,
        "risk_tier": "medium",
        "requires_confirmation": False,
        "idempotent": True,
    },
]


def golden(rt: cra.Runtime) -> tuple[str, cra.CARPResolution]:
    rt.load_atlas(RESOURCES)
    sid = rt.create_session("golden-agent", GOLDEN_GOAL)
    req = cra.CARPRequest.resolve(
        sid,
        "golden-agent",
        GOLDEN_GOAL,
        risk_tier="low",
        atlas_ids=["org.cra.resources"],
        request_id=GOLDEN_REQUEST_ID,
    )
    return sid, rt.resolve(req)


def test_golden_resolution_key_by_key(rt: cra.Runtime) -> None:
    sid, res = golden(rt)
    doc = res.to_dict()
    assert list(doc) == [
        "carp_version",
        "resolution_id",
        "request_id",
        "timestamp",
        "decision",
        "context_blocks",
        "allowed_actions",
        "denied_actions",
        "constraints",
        "ttl_seconds",
        "trace_id",
    ]
    assert doc["carp_version"] == "1.0"
    assert is_uuid7(doc["resolution_id"])
    assert doc["request_id"] == GOLDEN_REQUEST_ID
    stamp = parse_ts(doc["timestamp"])
    assert set(doc["decision"]) == {"type", "reason", "approval_id", "expires_at"}
    assert doc["decision"]["type"] == "partial"
    assert doc["decision"]["reason"] == "Some actions are denied by policy"
    assert doc["decision"]["approval_id"] is None
    assert parse_ts(doc["decision"]["expires_at"]) - stamp == timedelta(seconds=3600)
    assert doc["context_blocks"] == [
        {
            "block_id": "overview/context/overview.md",
            "source": "org.cra.resources",
            "content_type": "text/markdown",
            "content": OVERVIEW,
            "priority": 100,
            "token_estimate": 22,
        }
    ]
    assert len(doc["allowed_actions"]) == len(GOLDEN_ALLOWED)
    for got, want in zip(doc["allowed_actions"], GOLDEN_ALLOWED):
        assert set(got) == set(want)
        for key in want:
            assert got[key] == want[key], (want["action_id"], key)
            assert type(got[key]) is type(want[key]), (want["action_id"], key)
    assert doc["denied_actions"] == [
        {
            "action_id": "resource.delete",
            "reason": "Resources are never deleted here",
            "policy_id": "never-delete",
        }
    ]
    assert doc["constraints"] == []
    assert doc["ttl_seconds"] == 3600
    assert doc["trace_id"] == rt.get_session(sid)["trace_id"]


def test_golden_trace_events(rt: cra.Runtime) -> None:
    sid, res = golden(rt)
    events = rt.events(sid)
    rid = GOLDEN_REQUEST_ID
    assert [(e.event_type, e.payload) for e in events] == [
        ("session.started", {"agent_id": "golden-agent", "goal": GOLDEN_GOAL}),
        (
            "carp.request.received",
            {
                "request_id": rid,
                "operation": "resolve",
                "goal": GOLDEN_GOAL,
                "atlas_ids": ["org.cra.resources"],
                "risk_tier": "low",
            },
        ),
        (
            "policy.evaluated",
            {"policy_id": "allow-read", "result": "allow", "action_id": "resource.get"},
        ),
        (
            "policy.evaluated",
            {"policy_id": "allow-read", "result": "allow", "action_id": "resource.list"},
        ),
        (
            "policy.evaluated",
            {"policy_id": "allow-write", "result": "allow", "action_id": "resource.create"},
        ),
        (
            "policy.evaluated",
            {"policy_id": "allow-write", "result": "allow", "action_id": "resource.update"},
        ),
        (
            "policy.evaluated",
            {
                "policy_id": "never-delete",
                "result": "deny",
                "action_id": "resource.delete",
                "reason": "Resources are never deleted here",
            },
        ),
        (
            "context.injected",
            {
                "block_id": "overview/context/overview.md",
                "source": "org.cra.resources",
                "token_count": 22,
                "content_type": "text/markdown",
                "priority": 100,
            },
        ),
        (
            "carp.resolution.completed",
            {
                "resolution_id": res.resolution_id,
                "request_id": rid,
                "decision_type": "partial",
                "allowed_count": 4,
                "denied_count": 1,
                "context_block_count": 1,
                "ttl_seconds": 3600,
            },
        ),
    ]
    # The envelope of every event.
    trace_id = rt.get_session(sid)["trace_id"]
    assert res.trace_id == trace_id
    prev = "0" * 64
    for i, e in enumerate(events):
        d = e.to_dict()
        assert set(d) == {
            "trace_version",
            "event_id",
            "trace_id",
            "span_id",
            "parent_span_id",
            "session_id",
            "sequence",
            "timestamp",
            "event_type",
            "payload",
            "event_hash",
            "previous_event_hash",
        }
        assert d["trace_version"] == "1.0"
        assert is_uuid7(d["event_id"])
        assert d["trace_id"] == trace_id and d["session_id"] == sid
        assert d["sequence"] == i
        assert d["previous_event_hash"] == prev
        parse_ts(d["timestamp"])
        prev = d["event_hash"]
    assert rt.verify(sid).valid


def test_resolve_events_share_one_span_under_the_root(rt: cra.Runtime) -> None:
    sid, _ = golden(rt)
    second = rt.resolve(request(rt, sid, "Again"))
    events = rt.events(sid)
    root = events[0]
    assert root.event_type == "session.started" and root.parent_span_id is None
    assert root.span_id == rt.get_session(sid)["root_span_id"]
    first_span = {e.span_id for e in events[1:9]}
    second_span = {e.span_id for e in events[9:]}
    assert len(first_span) == 1 and len(second_span) == 1
    assert first_span != second_span and root.span_id not in first_span | second_span
    assert {e.parent_span_id for e in events[1:]} == {root.span_id}
    assert events[-1].payload["resolution_id"] == second.resolution_id


def test_resolve_event_payload_keys_with_optional_fields(rt: cra.Runtime) -> None:
    rt.load_atlas(PRIORITIES)
    sid = new_session(rt)
    rt.resolve(
        request(
            rt,
            sid,
            "Write",
            risk_tier="critical",
            context_hints=["h1"],
            required_capabilities=["write"],
        )
    )
    received = next(e for e in brief(rt, sid) if e["event_type"] == "carp.request.received")
    assert set(received["payload"]) == {
        "request_id",
        "operation",
        "goal",
        "atlas_ids",
        "risk_tier",
        "context_hints",
        "required_capabilities",
    }
    assert received["payload"]["atlas_ids"] == ["org.cra.priorities"]
    assert received["payload"]["context_hints"] == ["h1"]
    assert received["payload"]["required_capabilities"] == ["write"]
    for e in brief(rt, sid):
        if e["event_type"] == "context.injected":
            assert set(e["payload"]) == {
                "block_id",
                "source",
                "token_count",
                "content_type",
                "priority",
            }
        if e["event_type"] == "policy.evaluated":
            assert set(e["payload"]) in (
                {"policy_id", "result", "action_id"},
                {"policy_id", "result", "action_id", "reason"},
            )


def test_request_without_atlas_ids_names_every_candidate(rt: cra.Runtime) -> None:
    rt.load_atlas(RESOURCES)
    rt.load_atlas(GUARD)
    sid = new_session(rt)
    rt.resolve(request(rt, sid))
    received = brief(rt, sid)[1]
    assert received["event_type"] == "carp.request.received"
    assert received["payload"]["atlas_ids"] == ["org.cra.resources", "org.cra.guard"]
    assert "risk_tier" not in received["payload"]


# -- context packs ---------------------------------------------------------------------


def test_context_block_order_by_priority(rt: cra.Runtime) -> None:
    rt.load_atlas(PRIORITIES)
    sid = new_session(rt)
    res = rt.resolve(request(rt, sid, "Take notes"))
    assert [
        (b.block_id, b.priority, b.content_type, b.token_estimate) for b in res.context_blocks
    ] == [
        ("hundred/context/hundred.md", 100, "text/markdown", 4),
        ("fifty/context/fifty.json", 50, "application/json", 4),
        ("ten/context/ten.md", 10, "text/markdown", 2),
    ]


def test_context_ties_keep_declaration_order_then_atlas_order(rt: cra.Runtime) -> None:
    rt.load_atlas(
        inline_atlas(
            "org.test.one", [pack("b", "1b", 5), pack("a", "1a", 5), pack("top", "1top", 9)]
        )
    )
    rt.load_atlas(inline_atlas("org.test.two", [pack("z", "2z", 5), pack("unset", "2unset")]))
    sid = new_session(rt)
    res = rt.resolve(request(rt, sid))
    assert [(b.source, b.block_id) for b in res.context_blocks] == [
        ("org.test.one", "top"),
        ("org.test.one", "b"),
        ("org.test.one", "a"),
        ("org.test.two", "z"),
        ("org.test.two", "unset"),
    ]
    assert res.context_blocks[-1].priority == 0


@pytest.mark.parametrize(
    "goal, hints, expected",
    [
        ("Manage things", None, ["overview/context/overview.md"]),
        (
            "Please REMOVE the old resource",
            None,
            ["overview/context/overview.md", "removal/context/removal.md"],
        ),
        ("delete it", None, ["overview/context/overview.md", "removal/context/removal.md"]),
        (
            "Clean up",
            ["DeLeTe flow"],
            ["overview/context/overview.md", "removal/context/removal.md"],
        ),
        ("Clean up", ["archive", "nothing"], ["overview/context/overview.md"]),
        # Keywords occur as substrings (code's choice: "occurs" is a substring test).
        ("Undeleted items", None, ["overview/context/overview.md", "removal/context/removal.md"]),
    ],
)
def test_keyword_condition(
    rt: cra.Runtime, goal: str, hints: list[str] | None, expected: list[str]
) -> None:
    rt.load_atlas(RESOURCES)
    sid = new_session(rt)
    assert block_ids(rt.resolve(request(rt, sid, goal, context_hints=hints))) == expected


def test_keywords_are_case_insensitive_on_both_sides(rt: cra.Runtime) -> None:
    rt.load_atlas(
        inline_atlas("org.test.kw", [pack("k", "x", conditions={"keywords": ["Refund"]})])
    )
    sid = new_session(rt)
    assert block_ids(rt.resolve(request(rt, sid, "issue a REFUND"))) == ["k"]
    assert block_ids(rt.resolve(request(rt, sid, "Other", context_hints=["refund"]))) == ["k"]
    assert block_ids(rt.resolve(request(rt, sid, "Other"))) == []


@pytest.mark.parametrize(
    "tier, expected",
    [
        (None, ["hundred/context/hundred.md", "fifty/context/fifty.json", "ten/context/ten.md"]),
        ("high", ["hundred/context/hundred.md", "fifty/context/fifty.json", "ten/context/ten.md"]),
        (
            "critical",
            [
                "risky",
                "hundred/context/hundred.md",
                "fifty/context/fifty.json",
                "ten/context/ten.md",
            ],
        ),
    ],
)
def test_risk_tier_condition(rt: cra.Runtime, tier: str | None, expected: list[str]) -> None:
    rt.load_atlas(PRIORITIES)
    sid = new_session(rt)
    assert block_ids(rt.resolve(request(rt, sid, risk_tier=tier))) == expected


@pytest.mark.parametrize(
    "caps, has_inline",
    [(None, False), (["read"], False), (["write"], True), (["read", "write"], True)],
)
def test_capabilities_condition(rt: cra.Runtime, caps: list[str] | None, has_inline: bool) -> None:
    rt.load_atlas(PRIORITIES)
    sid = new_session(rt)
    ids = block_ids(rt.resolve(request(rt, sid, required_capabilities=caps)))
    assert ("inline" in ids) is has_inline
    if has_inline:
        # Same priority as "fifty", declared after it.
        assert ids.index("inline") == ids.index("fifty/context/fifty.json") + 1


def test_all_pack_conditions_must_hold(rt: cra.Runtime) -> None:
    rt.load_atlas(
        inline_atlas(
            "org.test.both",
            [pack("k", "x", conditions={"keywords": ["pay"], "risk_tiers": ["high"]})],
        )
    )
    sid = new_session(rt)
    assert block_ids(rt.resolve(request(rt, sid, "pay", risk_tier="high"))) == ["k"]
    assert block_ids(rt.resolve(request(rt, sid, "pay", risk_tier="low"))) == []
    assert block_ids(rt.resolve(request(rt, sid, "look", risk_tier="high"))) == []


def test_packs_of_non_candidate_atlases_are_left_out(rt: cra.Runtime) -> None:
    rt.load_atlas(RESOURCES)
    rt.load_atlas(PRIORITIES)
    sid = new_session(rt)
    res = rt.resolve(request(rt, sid, atlas_ids=["org.cra.resources"]))
    assert {b.source for b in res.context_blocks} == {"org.cra.resources"}
    res = rt.resolve(request(rt, sid))
    assert {b.source for b in res.context_blocks} == {"org.cra.resources", "org.cra.priorities"}


@pytest.mark.parametrize(
    "content, tokens",
    [("", 0), ("abcd", 1), ("abcde", 2), ("é" * 3, 2), ("€", 1), ("😀" * 2, 2), ("x" * 401, 101)],
)
def test_token_estimate_is_utf8_bytes_over_four_rounded_up(
    rt: cra.Runtime, content: str, tokens: int
) -> None:
    rt.load_atlas(inline_atlas("org.test.tok", [pack("k", content)]))
    sid = new_session(rt)
    b = rt.resolve(request(rt, sid)).context_blocks[0]
    assert (b.content, b.token_estimate) == (content, tokens)
    injected = next(e for e in brief(rt, sid) if e["event_type"] == "context.injected")
    assert injected["payload"]["token_count"] == tokens


def test_content_types(rt: cra.Runtime, tmp_path: Any) -> None:
    for name in ("a.md", "b.json", "c.txt", "d.md"):
        (tmp_path / name).write_text(name, encoding="utf-8")
    rt.load_atlas(
        inline_atlas(
            "org.test.types",
            [
                {
                    "pack_id": "files",
                    "name": "F",
                    "files": ["a.md", "b.json", "c.txt"],
                    "priority": 9,
                },
                {
                    "pack_id": "typed",
                    "name": "T",
                    "files": ["d.md"],
                    "content_type": "text/x-custom",
                    "priority": 8,
                },
                pack("inline", "plain words", 7),
                pack("inline-json", "{}", 6, content_type="application/json"),
            ],
        ),
        base_dir=tmp_path,
    )
    sid = new_session(rt)
    got = [(b.block_id, b.content_type) for b in rt.resolve(request(rt, sid)).context_blocks]
    assert got == [
        ("files/a.md", "text/markdown"),
        ("files/b.json", "application/json"),
        ("files/c.txt", "text/plain"),  # code's choice for other extensions
        ("typed/d.md", "text/x-custom"),
        ("inline", "text/markdown"),  # code's choice for inline content
        ("inline-json", "application/json"),
    ]


# -- capability filter ------------------------------------------------------------------


def test_required_capabilities_filter(rt: cra.Runtime) -> None:
    rt.load_atlas(PRIORITIES)
    sid = new_session(rt)
    read = rt.resolve(request(rt, sid, required_capabilities=["read"]))
    assert read.allowed_action_ids == ["note.read", "note.search"]
    both = rt.resolve(request(rt, sid, required_capabilities=["write", "read", "read"]))
    # Candidate order is declaration order, whatever order the capabilities come in.
    assert both.allowed_action_ids == ["note.read", "note.write", "note.search"]
    evaluated = [
        e["payload"]["action_id"] for e in brief(rt, sid) if e["event_type"] == "policy.evaluated"
    ]
    assert evaluated[:2] == ["note.read", "note.search"]


def test_required_capabilities_across_atlases(rt: cra.Runtime) -> None:
    rt.load_atlas(PRIORITIES)
    rt.load_atlas(RESOURCES)
    rt.load_atlas(GUARD)
    sid = new_session(rt)
    res = rt.resolve(request(rt, sid, required_capabilities=["read"]))
    assert res.allowed_action_ids == ["note.read", "note.search", "resource.get", "resource.list"]
    assert res.denied_actions == [] and res.decision.type == "allow"


def test_empty_required_capabilities_selects_nothing(rt: cra.Runtime) -> None:
    """Code's choice: `required_capabilities: []` keeps no action."""
    rt.load_atlas(PRIORITIES)
    sid = new_session(rt)
    res = rt.resolve(request(rt, sid, required_capabilities=[]))
    assert res.allowed_action_ids == [] and res.denied_action_ids == []
    assert res.decision.reason == "No actions matched the request"


@pytest.mark.parametrize(
    "caps, paths",
    [
        (["fly"], ["/task/required_capabilities/0"]),
        (["read", "fly"], ["/task/required_capabilities/1"]),
        (
            ["fly", "read", "swim"],
            ["/task/required_capabilities/0", "/task/required_capabilities/2"],
        ),
    ],
)
def test_unknown_capability_is_a_validation_error(
    rt: cra.Runtime, caps: list[str], paths: list[str]
) -> None:
    rt.load_atlas(PRIORITIES)
    sid = new_session(rt)
    before = len(rt.events(sid))
    with pytest.raises(ValidationError) as info:
        rt.resolve(request(rt, sid, required_capabilities=caps))
    assert info.value.code == "INVALID_REQUEST"
    assert info.value.path == paths[0]
    assert [f["path"] for f in info.value.errors] == paths
    assert [e.event_type for e in rt.events(sid)[before:]] == ["error.occurred"]


def test_capability_of_a_non_candidate_atlas_is_unknown(rt: cra.Runtime) -> None:
    rt.load_atlas(PRIORITIES)
    rt.load_atlas(GUARD)
    sid = new_session(rt)
    with pytest.raises(ValidationError) as info:
        rt.resolve(request(rt, sid, required_capabilities=["read"], atlas_ids=["org.cra.guard"]))
    assert info.value.path == "/task/required_capabilities/0"


# -- TTL, trace id ------------------------------------------------------------------------


def test_ttl_is_the_smallest_of_the_candidates(rt: cra.Runtime) -> None:
    rt.load_atlas(RESOURCES)  # 3600 (default)
    rt.load_atlas(PRIORITIES)  # 1200
    rt.load_atlas(GUARD)  # 600
    sid = new_session(rt)
    for atlas_ids, ttl in [
        (None, 600),
        (["org.cra.resources"], 3600),
        (["org.cra.resources", "org.cra.priorities"], 1200),
        (["org.cra.priorities", "org.cra.guard"], 600),
    ]:
        res = rt.resolve(request(rt, sid, atlas_ids=atlas_ids))
        assert res.ttl_seconds == ttl
        assert res.to_dict()["ttl_seconds"] == ttl
        assert parse_ts(res.decision.expires_at) - parse_ts(res.timestamp) == timedelta(seconds=ttl)
        done = rt.events(sid)[-1]
        assert done.event_type == "carp.resolution.completed"
        assert done.payload["ttl_seconds"] == ttl


@pytest.mark.parametrize("ttl", [0, 1, 86_400])
def test_ttl_bounds(rt: cra.Runtime, ttl: int) -> None:
    rt.load_atlas(make_atlas(default_ttl_seconds=ttl))
    sid = new_session(rt)
    res = rt.resolve(request(rt, sid))
    assert res.ttl_seconds == ttl
    assert parse_ts(res.decision.expires_at) - parse_ts(res.timestamp) == timedelta(seconds=ttl)


def test_ttl_with_no_atlas_loaded_is_the_default(rt: cra.Runtime) -> None:
    sid = new_session(rt)
    assert rt.resolve(request(rt, sid)).ttl_seconds == 3600


def test_timestamp_is_the_runtime_clock_not_the_request() -> None:
    with cra.Runtime(clock_skew_seconds=None) as loose:
        loose.load_atlas(RESOURCES)
        sid = new_session(loose)
        req = request(loose, sid)
        req["timestamp"] = "2000-01-01T00:00:00Z"
        res = loose.resolve(req)
    assert parse_ts(res.timestamp).year >= 2025
    assert parse_ts(res.decision.expires_at) - parse_ts(res.timestamp) == timedelta(seconds=3600)


def test_trace_id_is_the_sessions(rt: cra.Runtime) -> None:
    rt.load_atlas(RESOURCES)
    a, b = new_session(rt), new_session(rt)
    ra, rb = rt.resolve(request(rt, a)), rt.resolve(request(rt, b))
    assert ra.trace_id == rt.get_session(a)["trace_id"]
    assert rb.trace_id == rt.get_session(b)["trace_id"]
    assert ra.trace_id != rb.trace_id
    assert ra.session_id == a and rb.session_id == b


# -- the resolution objects ----------------------------------------------------------------


def test_resolution_properties(rt: cra.Runtime) -> None:
    rt.load_atlas(PAYMENTS)
    rt.load_atlas(GUARD)
    rt.load_atlas(RESOURCES)
    sid = new_session(rt)
    req = request(rt, sid, "Refund", risk_tier="high")
    res = rt.resolve(req)
    doc = res.to_dict()
    assert res.resolution_id == doc["resolution_id"] and is_uuid7(res.resolution_id)
    assert res.request_id == req["request_id"] == doc["request_id"]
    assert res.session_id == sid
    assert res.timestamp == doc["timestamp"]
    assert res.ttl_seconds == doc["ttl_seconds"] == 600
    assert isinstance(res.decision, cra.Decision)
    assert dataclasses.asdict(res.decision) == doc["decision"]
    # payments' require_approval has no pattern: at high risk it gates every
    # candidate action; only the guard's deny still denies.
    assert res.decision.type == "requires_approval"
    assert res.denied_action_ids == ["resource.delete"]
    assert is_uuid7(res.decision.approval_id)
    assert all(isinstance(a, cra.AllowedAction) for a in res.allowed_actions)
    # `rate_limit` is left out of the JSON when there is none; the object says None.
    assert [dataclasses.asdict(a) for a in res.allowed_actions] == [
        dict(a, rate_limit=a.get("rate_limit")) for a in doc["allowed_actions"]
    ]
    assert all(isinstance(d, cra.DeniedAction) for d in res.denied_actions)
    assert [dataclasses.asdict(d) for d in res.denied_actions] == doc["denied_actions"]
    assert all(isinstance(b, cra.ContextBlock) for b in res.context_blocks)
    assert [dataclasses.asdict(b) for b in res.context_blocks] == doc["context_blocks"]
    assert all(isinstance(c, cra.Constraint) for c in res.constraints)
    assert [dataclasses.asdict(c) for c in res.constraints] == doc["constraints"]
    assert res.allowed_action_ids == [a.action_id for a in res.allowed_actions]
    assert res.denied_action_ids == [d.action_id for d in res.denied_actions]
    assert cra.CARPResolution.__module__ == "cra.carp"


def test_is_allowed(rt: cra.Runtime) -> None:
    rt.load_atlas(PAYMENTS)
    rt.load_atlas(RESOURCES)
    sid = new_session(rt)
    res = rt.resolve(request(rt, sid, risk_tier="high"))
    assert res.is_allowed("resource.get") is True
    assert res.is_allowed("payment.refund") is True  # after approval
    assert res.is_allowed("resource.delete") is False
    assert res.is_allowed("no.such") is False
    assert res.is_allowed("") is False
    narrowed = rt.resolve(request(rt, sid, atlas_ids=["org.cra.payments"]))
    assert narrowed.is_allowed("resource.get") is False


def test_to_dict_is_a_fresh_copy_and_matches_to_json(rt: cra.Runtime) -> None:
    _, res = golden(rt)
    first = res.to_dict()
    first["decision"]["type"] = "allow"
    first["allowed_actions"].clear()
    again = res.to_dict()
    assert again["decision"]["type"] == "partial" and len(again["allowed_actions"]) == 4
    assert json.loads(res.to_json()) == again
    # The nested views are built from the resolution, not from a caller's copy.
    assert res.decision.type == "partial" and len(res.allowed_actions) == 4


def test_resolution_is_immutable(rt: cra.Runtime) -> None:
    _, res = golden(rt)
    for name, value in [("decision", None), ("ttl_seconds", 1), ("anything", 1), ("_r", None)]:
        with pytest.raises(AttributeError):
            setattr(res, name, value)
    with pytest.raises(AttributeError):
        del res.decision  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.decision.type = "allow"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.allowed_actions[0].requires_confirmation = True  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.context_blocks[0].content = "other"  # type: ignore[misc]
    core = cra.fast.resolver(rt, res.session_id).resolve("x")
    with pytest.raises(AttributeError):
        core.decision_type = "allow"  # type: ignore[misc]
    assert res.decision.type == "partial"


def test_resolution_repr_is_readable(rt: cra.Runtime) -> None:
    _, res = golden(rt)
    text = repr(res)
    assert text.startswith("CARPResolution(partial")
    assert "resource.get" in text and "resource.delete" in text
    assert res.resolution_id in text
    assert "Decision(type='partial'" in repr(res.decision)


# -- cra.fast ---------------------------------------------------------------------------------


def summary(res: Any) -> dict[str, Any]:
    doc = json.loads(res.to_json())
    return {
        "decision": {k: v for k, v in doc["decision"].items() if k in ("type", "reason")},
        "has_approval": doc["decision"]["approval_id"] is not None,
        "allowed": doc["allowed_actions"],
        "denied": doc["denied_actions"],
        "blocks": doc["context_blocks"],
        "constraints": doc["constraints"],
        "ttl": doc["ttl_seconds"],
        "trace_id": doc["trace_id"],
    }


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"risk_tier": "high"},
        {"risk_tier": "critical", "required_capabilities": ["read"]},
        {"atlas_ids": ["org.cra.resources"]},
        {"context_hints": ["remove"]},
        {"atlas_ids": ["org.cra.payments", "org.cra.guard"], "risk_tier": "medium"},
    ],
)
def test_fast_resolver_gives_the_same_answer(rt: cra.Runtime, kw: dict[str, Any]) -> None:
    for atlas in (PAYMENTS, RESOURCES, PRIORITIES, GUARD):
        rt.load_atlas(atlas)
    sid = new_session(rt)
    slow = rt.resolve(request(rt, sid, "Delete the resource", **kw))
    resolver = cra.fast.resolver(rt, sid)
    assert resolver.session_id == sid
    fast = resolver.resolve("Delete the resource", **kw)
    assert isinstance(fast, cra.fast.Resolution)
    assert fast.decision_type == slow.decision.type
    assert fast.allowed_action_ids() == slow.allowed_action_ids
    assert fast.denied_action_ids() == slow.denied_action_ids
    assert summary(fast) == summary(slow)
    assert fast.resolution_id != slow.resolution_id and is_uuid7(fast.request_id)
    # The same events, in the same shape.
    events = brief(rt, sid)
    completed = [i for i, e in enumerate(events) if e["event_type"] == "carp.resolution.completed"]
    first, second = events[1 : completed[0] + 1], events[completed[0] + 1 :]
    strip = ("request_id", "resolution_id")
    assert [
        (e["event_type"], {k: v for k, v in e["payload"].items() if k not in strip}) for e in first
    ] == [
        (e["event_type"], {k: v for k, v in e["payload"].items() if k not in strip}) for e in second
    ]
    assert rt.verify(sid).valid


def test_fast_resolver_errors(rt: cra.Runtime) -> None:
    rt.load_atlas(RESOURCES)
    with pytest.raises(NotFoundError):
        cra.fast.resolver(rt, "0193a0b0-0000-7000-8000-00000000ffff")
    with pytest.raises(ValidationError):
        cra.fast.resolver(rt, "not-a-uuid")
    sid = new_session(rt)
    resolver = cra.fast.resolver(rt, sid)
    with pytest.raises(ValidationError) as info:
        resolver.resolve("")
    assert info.value.path == "/task/goal"
    with pytest.raises(ValidationError) as info:
        resolver.resolve("x", risk_tier="severe")
    assert info.value.path == "/task/risk_tier"
    with pytest.raises(NotFoundError):
        resolver.resolve("x", atlas_ids=["org.cra.nowhere"])
    with pytest.raises(ValidationError):
        resolver.resolve("x", required_capabilities="read")
    rt.end_session(sid)
    with pytest.raises(cra.errors.ExpiredError):
        resolver.resolve("x")


# -- atomic replacement under concurrent resolves ------------------------------------------------

SWAP_A = make_atlas(
    "org.test.swap",
    version="1.0.0",
    actions=[action("swap.one"), action("swap.two")],
    policies=[policy("allow-a", "allow")],
    context_packs=[{"pack_id": "a", "name": "A", "content": "version A"}],
    default_ttl_seconds=100,
)
SWAP_B = make_atlas(
    "org.test.swap",
    version="2.0.0",
    actions=[action("swap.one"), action("swap.two"), action("swap.three")],
    policies=[policy("deny-b", "deny", reason="version B says no")],
    context_packs=[{"pack_id": "b", "name": "B", "content": "version B"}],
    default_ttl_seconds=200,
)


def kind_of(doc: dict[str, Any]) -> str:
    a = {
        "decision": ("allow", None),
        "allowed": ["swap.one", "swap.two"],
        "denied": [],
        "blocks": [("a", "version A")],
        "ttl": 100,
    }
    b = {
        "decision": ("deny", "version B says no"),
        "allowed": [],
        "denied": [("swap.one", "deny-b"), ("swap.two", "deny-b"), ("swap.three", "deny-b")],
        "blocks": [("b", "version B")],
        "ttl": 200,
    }
    got = {
        "decision": (doc["decision"]["type"], doc["decision"]["reason"]),
        "allowed": [x["action_id"] for x in doc["allowed_actions"]],
        "denied": [(x["action_id"], x["policy_id"]) for x in doc["denied_actions"]],
        "blocks": [(x["block_id"], x["content"]) for x in doc["context_blocks"]],
        "ttl": doc["ttl_seconds"],
    }
    if got == a:
        return "A"
    if got == b:
        return "B"
    raise AssertionError(f"a mix of versions: {got}")


def test_replacing_an_atlas_is_atomic_for_concurrent_resolves(rt: cra.Runtime) -> None:
    rt.load_atlas(SWAP_A)
    sessions = [rt.create_session(f"agent-{i}", "Swap") for i in range(4)]
    results: list[cra.CARPResolution] = []
    failures: list[BaseException] = []
    swaps = [0]
    done = threading.Event()
    lock = threading.Lock()

    def replacer() -> None:
        try:
            while not done.is_set():
                rt.load_atlas(SWAP_B if swaps[0] % 2 == 0 else SWAP_A, replace=True)
                swaps[0] += 1
        except BaseException as e:
            failures.append(e)

    def resolver(sid: str) -> None:
        mine: list[cra.CARPResolution] = []
        try:
            while len(mine) < 5_000 and (len(mine) < 150 or swaps[0] < 40):
                mine.append(rt.resolve(request(rt, sid, "Swap")))
        except BaseException as e:
            failures.append(e)
        with lock:
            results.extend(mine)

    swapper = threading.Thread(target=replacer)
    workers = [threading.Thread(target=resolver, args=(sessions[i % 4],)) for i in range(8)]
    swapper.start()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    done.set()
    swapper.join()
    assert failures == []
    kinds: dict[str, str] = {}
    for res in results:
        kinds[res.resolution_id] = kind_of(res.to_dict())
    assert set(kinds.values()) == {"A", "B"}, (swaps[0], len(results))

    # Every chain verifies, and the events of each resolve tell the same story.
    total = 0
    for sid in sessions:
        assert rt.verify(sid).valid
        by_span: dict[str, list[dict[str, Any]]] = {}
        for e in rt.events(sid)[1:]:
            by_span.setdefault(e.span_id, []).append(
                {"event_type": e.event_type, "payload": e.payload}
            )
        for span in by_span.values():
            done_event = span[-1]
            assert done_event["event_type"] == "carp.resolution.completed"
            kind = kinds[done_event["payload"]["resolution_id"]]
            policies = {
                e["payload"]["policy_id"] for e in span if e["event_type"] == "policy.evaluated"
            }
            blocks = [
                e["payload"]["block_id"] for e in span if e["event_type"] == "context.injected"
            ]
            assert (policies, blocks) == (
                ({"allow-a"}, ["a"]) if kind == "A" else ({"deny-b"}, ["b"])
            )
            total += 1
    assert total == len(results)


def test_repeated_atlas_ids_count_once(rt: cra.Runtime) -> None:
    """Code's choice: a repeated atlas id is one candidate, in first-mention order."""
    rt.load_atlas(RESOURCES)
    rt.load_atlas(GUARD)
    sid = new_session(rt)
    ids = ["org.cra.guard", "org.cra.resources", "org.cra.guard"]
    res = rt.resolve(request(rt, sid, atlas_ids=ids))
    assert len(res.allowed_action_ids) + len(res.denied_action_ids) == 5
    received = [e for e in brief(rt, sid) if e["event_type"] == "carp.request.received"][-1]
    assert received["payload"]["atlas_ids"] == ["org.cra.guard", "org.cra.resources"]
