"""Helpers of the Atlas/CARP resolver tests: request and atlas builders,
paths to the conformance atlases, and short views of a session's events."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import cra
import pytest
from cra.errors import CraError, ValidationError

ROOT = Path(__file__).resolve().parent.parent
CONFORMANCE = ROOT / "python" / "cra" / "conformance_cases"
ATLASES = CONFORMANCE / "atlases"
RESOURCES = ATLASES / "resources"
PRIORITIES = ATLASES / "priorities"
PAYMENTS = ATLASES / "payments"
GUARD = ATLASES / "guard"
AGENTS = ATLASES / "agents"

#: A lower-case hyphenated UUID.
UUID_RE = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


def atlas_path(name: str) -> str:
    """The path of a conformance atlas directory, as a string."""
    return str(ATLASES / name)


def request(
    rt: cra.Runtime,
    session_id: str,
    goal: str = "Do the work",
    **kw: Any,
) -> dict[str, Any]:
    """A valid resolve request for a session (its own agent id)."""
    agent = rt.get_session(session_id)["agent_id"]
    return cra.CARPRequest.resolve(session_id, agent, goal, **kw)


def action(action_id: str, **kw: Any) -> dict[str, Any]:
    """An action entry of a manifest."""
    out: dict[str, Any] = {"action_id": action_id, "name": action_id.split(".")[-1].title()}
    out.update(kw)
    return out


def policy(
    policy_id: str, type_: str, actions: Sequence[str] | None = None, **kw: Any
) -> dict[str, Any]:
    """A policy entry of a manifest (`actions` absent means every action)."""
    out: dict[str, Any] = {"policy_id": policy_id, "type": type_}
    if actions is not None:
        out["actions"] = list(actions)
    out.update(kw)
    return out


def make_atlas(
    atlas_id: str = "org.test.alpha",
    *,
    version: str = "1.0.0",
    name: str = "Test atlas",
    actions: Sequence[dict[str, Any]] = (),
    policies: Sequence[dict[str, Any]] = (),
    **extra: Any,
) -> dict[str, Any]:
    """A valid Atlas/1.0 manifest dict; `extra` adds or overrides fields."""
    out: dict[str, Any] = {
        "atlas_version": "1.0",
        "atlas_id": atlas_id,
        "version": version,
        "name": name,
        "actions": list(actions),
        "policies": list(policies),
    }
    out.update(extra)
    return out


def new_session(rt: cra.Runtime, agent_id: str = "agent-1", goal: str = "Work") -> str:
    """A new active session's id."""
    return rt.create_session(agent_id, goal)


def brief(rt: cra.Runtime, session_id: str, start: int = 0) -> list[dict[str, Any]]:
    """`{event_type, payload}` of a session's events from `start`."""
    return [
        {"event_type": e.event_type, "payload": e.payload} for e in rt.events(session_id)[start:]
    ]


def types(rt: cra.Runtime, session_id: str, start: int = 0) -> list[str]:
    """Event types of a session's events from `start`."""
    return [e.event_type for e in rt.events(session_id)[start:]]


def decided_by(res: cra.CARPResolution) -> dict[str, str]:
    """action id -> deciding policy id of the denied actions."""
    return {d.action_id: d.policy_id for d in res.denied_actions}


def resolve_one(
    policies: Sequence[dict[str, Any]],
    actions: Sequence[dict[str, Any]],
    *,
    agent_id: str = "agent-1",
    atlas_extra: dict[str, Any] | None = None,
    **request_kw: Any,
) -> cra.CARPResolution:
    """Loads one atlas into a fresh runtime and resolves once."""
    with cra.Runtime() as rt:
        rt.load_atlas(make_atlas(actions=actions, policies=policies, **(atlas_extra or {})))
        sid = rt.create_session(agent_id, "Work")
        return rt.resolve(request(rt, sid, **request_kw))


ACT = [action("doc.read")]


def outcome(res: cra.CARPResolution, action_id: str) -> tuple[str, str | None, str | None]:
    """(allow | requires_approval | deny, policy id if denied, reason if denied)."""
    for d in res.denied_actions:
        if d.action_id == action_id:
            return ("deny", d.policy_id, d.reason)
    for a in res.allowed_actions:
        if a.action_id == action_id:
            return ("requires_approval" if a.requires_confirmation else "allow", None, None)
    raise AssertionError(f"{action_id} is not a candidate")


def fault_paths(err: CraError) -> list[str]:
    return [f["path"] for f in err.errors]


def rejected(rt: cra.Runtime, source: Any, **kw: Any) -> CraError:
    """Loads `source`, which must be rejected as ATLAS_INVALID."""
    before = [a.atlas_id for a in rt.atlases()]
    with pytest.raises(ValidationError) as info:
        rt.load_atlas(source, **kw)
    err = info.value
    assert err.code == "ATLAS_INVALID"
    assert err.category == "validation" and err.http_status == 400
    for f in err.errors:
        assert f["message"], f
        assert f["path"] == "" or f["path"].startswith("/"), f
    assert err.path == err.errors[0]["path"]
    # A rejected atlas changes nothing.
    assert [a.atlas_id for a in rt.atlases()] == before
    return err


TIMESTAMP_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


GOLDEN_GOAL = "Manage resources in the test environment"


GOLDEN_REQUEST_ID = "0193a0b0-0000-7000-8000-000000000001"


def parse_ts(text: str) -> datetime:
    assert TIMESTAMP_RE.match(text), text
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")


def is_uuid7(text: str | None) -> bool:
    return text is not None and re.match(UUID_RE, text) is not None and text[14] == "7"


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
