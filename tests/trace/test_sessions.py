"""Sessions around resolve: create/get/list/end with their events, resolve on
unknown or ended sessions, duplicate request ids, the clock-skew window, and
what a rejected request leaves behind (one `error.occurred`, nothing else)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import cra
import pytest
from cra.errors import ConflictError, ExpiredError, NotFoundError, ValidationError
from resolve_helpers import RESOURCES, UUID_RE, brief, new_session, request, types

UNKNOWN = "0193a0b0-0000-7000-8000-00000000dead"


@pytest.fixture
def rt() -> Iterator[cra.Runtime]:
    runtime = cra.Runtime(atlases=[RESOURCES])
    yield runtime
    runtime.close(timeout=10)


def recorded(rt: cra.Runtime) -> int:
    rt.flush()
    return int(rt.stats()["recorded"])


def stamp(dt: datetime) -> str:
    return dt.isoformat(timespec="microseconds")


# -- create, get, list, end ---------------------------------------------------------


def test_create_session_mints_a_uuid7(rt: cra.Runtime) -> None:
    sid = rt.create_session("agent-1", "Look around")
    assert re.match(UUID_RE, sid) and sid[14] == "7"
    info = rt.get_session(sid)
    assert info == {
        "session_id": sid,
        "trace_id": info["trace_id"],
        "root_span_id": info["root_span_id"],
        "agent_id": "agent-1",
        "goal": "Look around",
        "parent_session_id": None,
        "status": "active",
        "created_at": info["created_at"],
        "ended_at": None,
        "end_reason": None,
    }
    for key in ("trace_id", "root_span_id"):
        assert re.match(UUID_RE, info[key]) and info[key][14] == "7"
    assert len({sid, info["trace_id"], info["root_span_id"]}) == 3
    [started] = rt.events(sid)
    assert started.event_type == "session.started"
    assert started.payload == {"agent_id": "agent-1", "goal": "Look around"}
    assert started.span_id == info["root_span_id"] and started.parent_span_id is None
    assert started.timestamp == info["created_at"]


def test_create_session_with_given_ids(rt: cra.Runtime) -> None:
    parent = rt.create_session("agent-1", "Parent")
    sid = str(uuid.uuid4())
    assert rt.create_session("agent-2", "Child", session_id=sid, parent_session_id=parent) == sid
    info = rt.get_session(sid)
    assert info["parent_session_id"] == parent and info["agent_id"] == "agent-2"
    [started] = rt.events(sid)
    assert started.payload == {"agent_id": "agent-2", "goal": "Child", "parent_session_id": parent}


def test_parent_session_need_not_be_known(rt: cra.Runtime) -> None:
    """Code's choice: the parent id is recorded as given, not looked up."""
    sid = rt.create_session("agent-1", "Child", parent_session_id=UNKNOWN)
    assert rt.events(sid)[0].payload["parent_session_id"] == UNKNOWN


def test_create_session_rejects(rt: cra.Runtime) -> None:
    sid = rt.create_session("agent-1", "Once")
    with pytest.raises(ConflictError) as info:
        rt.create_session("agent-1", "Twice", session_id=sid)
    assert info.value.code == "SESSION_EXISTS"
    assert len(rt.events(sid)) == 1
    for kw, path in [
        ({"session_id": "nope"}, "/session_id"),
        ({"parent_session_id": "nope"}, "/parent_session_id"),
    ]:
        with pytest.raises(ValidationError) as vinfo:
            rt.create_session("agent-1", "Bad", **kw)
        assert vinfo.value.path == path
    for agent, goal, path in [
        ("", "g", "/agent_id"),
        ("a" * 256, "g", "/agent_id"),
        ("a", "", "/goal"),
        ("a", "g" * 10_001, "/goal"),
    ]:
        with pytest.raises(ValidationError) as vinfo:
            rt.create_session(agent, goal)
        assert vinfo.value.path == path
    assert len(rt.list_sessions()) == 1


def test_get_unknown_session(rt: cra.Runtime) -> None:
    with pytest.raises(NotFoundError) as info:
        rt.get_session(UNKNOWN)
    assert info.value.code == "SESSION_NOT_FOUND" and info.value.http_status == 404


def test_list_sessions_by_status(rt: cra.Runtime) -> None:
    ids = [rt.create_session(f"agent-{i}", "Work") for i in range(4)]
    rt.end_session(ids[1])
    rt.end_session(ids[3], reason="failed")
    assert [s["session_id"] for s in rt.list_sessions()] == ids
    assert [s["session_id"] for s in rt.list_sessions("active")] == [ids[0], ids[2]]
    assert [s["session_id"] for s in rt.list_sessions("ended")] == [ids[1], ids[3]]
    assert [s["end_reason"] for s in rt.list_sessions("ended")] == ["completed", "failed"]
    with pytest.raises(ValidationError):
        rt.list_sessions("paused")


def test_end_session_records_reason_and_duration(rt: cra.Runtime) -> None:
    sid = rt.create_session("agent-1", "Work")
    rt.resolve(request(rt, sid))
    rt.end_session(sid, reason="goal reached")
    events = rt.events(sid)
    ended = events[-1]
    assert ended.event_type == "session.ended"
    assert set(ended.payload) == {"reason", "duration_ms"}
    assert ended.payload["reason"] == "goal reached"
    assert type(ended.payload["duration_ms"]) is int and ended.payload["duration_ms"] >= 0
    # Its own span under the root.
    assert ended.parent_span_id == events[0].span_id
    assert ended.span_id not in {e.span_id for e in events[:-1]}
    info = rt.get_session(sid)
    assert info["status"] == "ended" and info["end_reason"] == "goal reached"
    assert info["ended_at"] <= ended.timestamp
    assert rt.verify(sid).valid


def test_ended_at_is_the_session_ended_timestamp(rt: cra.Runtime) -> None:
    sid = rt.create_session("agent-1", "Work")
    rt.end_session(sid)
    assert rt.get_session(sid)["ended_at"] == rt.events(sid)[-1].timestamp


def test_end_session_default_reason_and_twice(rt: cra.Runtime) -> None:
    sid = rt.create_session("agent-1", "Work")
    rt.end_session(sid)
    assert rt.events(sid)[-1].payload["reason"] == "completed"
    with pytest.raises(ExpiredError) as info:
        rt.end_session(sid)
    assert info.value.code == "SESSION_ENDED"
    assert types(rt, sid) == ["session.started", "session.ended"]
    with pytest.raises(NotFoundError):
        rt.end_session(UNKNOWN)


# -- resolve on unknown and ended sessions ---------------------------------------------


def test_resolve_on_unknown_session(rt: cra.Runtime) -> None:
    other = rt.create_session("agent-1", "Bystander")
    before = recorded(rt)
    req = cra.CARPRequest.resolve(UNKNOWN, "agent-1", "Work")
    with pytest.raises(NotFoundError) as info:
        rt.resolve(req)
    err = info.value
    assert (err.code, err.category, err.http_status) == ("SESSION_NOT_FOUND", "not_found", 404)
    assert err.recoverable is False
    assert recorded(rt) == before
    assert len(rt._core.all_events()) == before
    assert types(rt, other) == ["session.started"]
    assert rt.events(UNKNOWN) == []


def test_resolve_on_ended_session(rt: cra.Runtime) -> None:
    sid = rt.create_session("agent-1", "Work")
    req = request(rt, sid)
    rt.end_session(sid)
    before = recorded(rt)
    with pytest.raises(ExpiredError) as info:
        rt.resolve(req)
    err = info.value
    assert (err.code, err.category, err.http_status) == ("SESSION_ENDED", "expired", 410)
    assert recorded(rt) == before
    assert types(rt, sid) == ["session.started", "session.ended"]


# -- duplicate request ids ---------------------------------------------------------------


def test_duplicate_request_id(rt: cra.Runtime) -> None:
    sid = rt.create_session("agent-1", "Work")
    req = request(rt, sid)
    first = rt.resolve(req)
    n = len(rt.events(sid))
    again = dict(req, timestamp=cra.carp.now_timestamp())
    again["task"] = {"goal": "Something else"}
    with pytest.raises(ConflictError) as info:
        rt.resolve(again)
    err = info.value
    assert (err.code, err.category, err.http_status) == ("DUPLICATE_REQUEST", "conflict", 409)
    assert req["request_id"] in err.message
    [event] = brief(rt, sid, n)
    assert event["event_type"] == "error.occurred"
    assert event["payload"]["code"] == "DUPLICATE_REQUEST"
    assert req["request_id"] in event["payload"]["message"]
    assert first.request_id == req["request_id"]


def test_same_request_id_in_another_session_is_fine(rt: cra.Runtime) -> None:
    a, b = rt.create_session("agent-1", "A"), rt.create_session("agent-1", "B")
    rid = cra.carp.new_id()
    ra = rt.resolve(request(rt, a, request_id=rid))
    rb = rt.resolve(request(rt, b, request_id=rid))
    assert ra.request_id == rb.request_id == rid


def test_request_id_of_a_failed_request_is_not_used_up(rt: cra.Runtime) -> None:
    sid = rt.create_session("agent-1", "Work")
    rid = cra.carp.new_id()
    with pytest.raises(NotFoundError):
        rt.resolve(request(rt, sid, request_id=rid, atlas_ids=["org.cra.nowhere"]))
    with pytest.raises(ValidationError):
        rt.resolve(request(rt, sid, request_id=rid, required_capabilities=["fly"]))
    bad = request(rt, sid, request_id=rid)
    bad["task"]["risk_tier"] = "extreme"
    with pytest.raises(ValidationError):
        rt.resolve(bad)
    assert rt.resolve(request(rt, sid, request_id=rid)).request_id == rid


# -- clock skew ---------------------------------------------------------------------------


@pytest.mark.parametrize("minutes", [-10, 10])
def test_timestamp_ten_minutes_off_is_clock_skew(rt: cra.Runtime, minutes: int) -> None:
    sid = rt.create_session("agent-1", "Work")
    req = request(rt, sid)
    req["timestamp"] = stamp(datetime.now(timezone.utc) + timedelta(minutes=minutes))
    with pytest.raises(ValidationError) as info:
        rt.resolve(req)
    err = info.value
    assert (err.code, err.path, err.http_status) == ("CLOCK_SKEW", "/timestamp", 400)
    assert types(rt, sid) == ["session.started", "error.occurred"]
    assert rt.events(sid)[-1].payload["code"] == "CLOCK_SKEW"
    # The request id was not used up.
    req["timestamp"] = cra.carp.now_timestamp()
    assert rt.resolve(req).request_id == req["request_id"]


def test_clock_skew_check_can_be_disabled() -> None:
    with cra.Runtime(atlases=[RESOURCES], clock_skew_seconds=None) as rt:
        sid = rt.create_session("agent-1", "Work")
        for delta in (timedelta(minutes=-10), timedelta(days=400), timedelta(days=-4000)):
            req = request(rt, sid)
            req["timestamp"] = stamp(datetime.now(timezone.utc) + delta)
            assert rt.resolve(req).decision.type == "partial"


def test_clock_skew_window_is_configurable() -> None:
    with cra.Runtime(atlases=[RESOURCES], clock_skew_seconds=3600) as rt:
        sid = rt.create_session("agent-1", "Work")
        req = request(rt, sid)
        req["timestamp"] = stamp(datetime.now(timezone.utc) - timedelta(minutes=10))
        rt.resolve(req)
        req = request(rt, sid)
        req["timestamp"] = stamp(datetime.now(timezone.utc) - timedelta(hours=2))
        with pytest.raises(ValidationError) as info:
            rt.resolve(req)
        assert info.value.code == "CLOCK_SKEW"


def test_clock_skew_option_must_be_sane() -> None:
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValidationError):
            cra.Runtime(clock_skew_seconds=bad)


def test_timestamp_with_an_offset_inside_the_window(rt: cra.Runtime) -> None:
    sid = rt.create_session("agent-1", "Work")
    india = timezone(timedelta(hours=5, minutes=30))
    req = request(rt, sid)
    req["timestamp"] = datetime.now(india).isoformat(timespec="milliseconds")
    assert req["timestamp"].endswith("+05:30")
    assert rt.resolve(req).decision.type == "partial"
    # The same wall-clock digits read as UTC would be 5.5 hours off.
    wrong = request(rt, sid)
    wrong["timestamp"] = datetime.now(india).replace(tzinfo=timezone.utc).isoformat()
    with pytest.raises(ValidationError) as info:
        rt.resolve(wrong)
    assert info.value.code == "CLOCK_SKEW"


@pytest.mark.parametrize(
    "fmt",
    [
        lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ"),
        lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z",
        lambda t: t.isoformat(),
        lambda t: t.strftime("%Y-%m-%dt%H:%M:%S.%fz"),
    ],
    ids=["seconds", "nanoseconds", "plus-zero", "lower-case"],
)
def test_request_timestamps_of_any_precision(rt: cra.Runtime, fmt: Any) -> None:
    sid = rt.create_session("agent-1", "Work")
    req = request(rt, sid)
    req["timestamp"] = fmt(datetime.now(timezone.utc))
    rt.resolve(req)


@pytest.mark.parametrize(
    "text",
    ["yesterday", "2026-11-21", "2026-11-21T12:00:00", "2026-13-01T00:00:00Z", "", "12:00:00Z"],
)
def test_unreadable_timestamp(rt: cra.Runtime, text: str) -> None:
    sid = rt.create_session("agent-1", "Work")
    req = request(rt, sid)
    req["timestamp"] = text
    with pytest.raises(ValidationError) as info:
        rt.resolve(req)
    assert (info.value.code, info.value.path) == ("INVALID_REQUEST", "/timestamp")


# -- a rejected request leaves one error.occurred and nothing else ----------------------------


def _rejections(sid: str, agent: str) -> list[dict[str, Any]]:
    base = cra.CARPRequest.resolve(sid, agent, "Work")
    out: list[dict[str, Any]] = []
    out.append(dict(base, carp_version="2.0"))
    out.append(dict(base, task={"goal": ""}))
    out.append(dict(base, task={"goal": "x", "risk_tier": "extreme"}))
    out.append(dict(base, surprise=True))
    out.append(dict(base, atlas_ids=["org.cra.nowhere"]))
    out.append(dict(base, task={"goal": "x", "required_capabilities": ["fly"]}))
    out.append(dict(base, context={"x": float("nan")}))
    out.append(dict(base, operation="execute"))
    out.append(dict(base, request_id="not-a-uuid"))
    return out


def test_rejected_request_emits_exactly_one_error_event(rt: cra.Runtime) -> None:
    sid = rt.create_session("agent-1", "Work")
    rt.resolve(request(rt, sid))
    root = rt.events(sid)[0].span_id
    for req in _rejections(sid, "agent-1"):
        before = rt.events(sid)
        sessions_before = rt.list_sessions()
        atlases_before = rt.atlases()
        with pytest.raises(cra.CraError) as info:
            rt.resolve(req)
        after = rt.events(sid)
        assert after[: len(before)] == before
        [new] = after[len(before) :]
        assert new.event_type == "error.occurred"
        assert set(new.payload) == {"code", "message"}
        assert new.payload["code"] == info.value.code
        assert new.payload["message"]
        assert new.parent_span_id == root
        assert new.span_id not in {e.span_id for e in before}
        assert rt.list_sessions() == sessions_before
        assert rt.atlases() == atlases_before
    assert rt.verify(sid).valid
    # Nothing but the one resolve before was kept.
    assert types(rt, sid).count("carp.resolution.completed") == 1
    assert rt.resolve(request(rt, sid)).decision.type == "partial"


def test_rejected_request_of_an_ended_session_records_nothing(rt: cra.Runtime) -> None:
    sid = rt.create_session("agent-1", "Work")
    rt.end_session(sid)
    before = recorded(rt)
    for req in _rejections(sid, "agent-1"):
        with pytest.raises(cra.CraError):
            rt.resolve(req)
    assert recorded(rt) == before


def test_rejected_request_of_an_unknown_session_records_nothing(rt: cra.Runtime) -> None:
    new_session(rt)
    before = recorded(rt)
    for req in _rejections(UNKNOWN, "agent-1"):
        with pytest.raises(cra.CraError):
            rt.resolve(req)
    assert recorded(rt) == before
