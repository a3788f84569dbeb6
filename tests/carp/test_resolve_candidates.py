"""Which atlases are candidates of a resolve and what the capability filter
selects: every loaded atlas without atlas_ids, repeated atlas ids counted
once, required capabilities within and across atlases, and unknown
capabilities.
"""

from __future__ import annotations

import cra
import pytest
from cra.errors import ValidationError
from resolve_helpers import (
    GUARD,
    PRIORITIES,
    RESOURCES,
    brief,
    new_session,
    request,
)

# -- the golden worked case ------------------------------------------------------------


def test_request_without_atlas_ids_names_every_candidate(rt: cra.Runtime) -> None:
    rt.load_atlas(RESOURCES)
    rt.load_atlas(GUARD)
    sid = new_session(rt)
    rt.resolve(request(rt, sid))
    received = brief(rt, sid)[1]
    assert received["event_type"] == "carp.request.received"
    assert received["payload"]["atlas_ids"] == ["org.cra.resources", "org.cra.guard"]
    assert "risk_tier" not in received["payload"]


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
