"""The golden worked case of resolve: the resolution key by key, its 9 trace
events, one span under the root, and the payload keys of the resolve events
with their optional fields.
"""

from __future__ import annotations

from datetime import timedelta

import cra
from resolve_helpers import (
    GOLDEN_GOAL,
    GOLDEN_REQUEST_ID,
    PRIORITIES,
    brief,
    golden,
    is_uuid7,
    new_session,
    parse_ts,
    request,
)

OVERVIEW = (
    "# Resources\n\nA resource has an id, a name and some data. Read it before you change it.\n"
)


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
