"""The resolution object of resolve: the TTL as the smallest of the candidates
and its bounds, timestamps from the runtime clock, the session's trace id,
and the Python object's properties, is_allowed, to_dict, immutability and
repr.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

import cra
import pytest
from resolve_helpers import (
    GUARD,
    PAYMENTS,
    PRIORITIES,
    RESOURCES,
    golden,
    is_uuid7,
    make_atlas,
    new_session,
    parse_ts,
    request,
)

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
