"""The `cra.fast` resolver gives the same answer as resolve, and the same
errors.
"""

from __future__ import annotations

import json
from typing import Any

import cra
import pytest
from cra.errors import NotFoundError, ValidationError
from resolve_helpers import (
    GUARD,
    PAYMENTS,
    PRIORITIES,
    RESOURCES,
    brief,
    is_uuid7,
    new_session,
    request,
)


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
