"""The governed cannot govern (issue 13, finding 2): a request speaks only for
its session's agent; agent-scoped limits count per session agent; an execution
passes both the atlases its resolution was issued under and the ones loaded
now; and an approval's note is bounded and printable."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import cra
import pytest
from cra.errors import AuthorizationError, ValidationError
from execute_helpers import CALL_SCHEMA, OPS_ID, Harness, code, ops_atlas
from resolve_helpers import action, make_atlas, policy

MISMATCH_MESSAGE = "the request's agent_id is not the session's agent"


@pytest.fixture
def h() -> Iterator[Harness]:
    with Harness() as harness:
        yield harness


def as_agent(req: dict[str, Any], agent_id: str) -> dict[str, Any]:
    req["requester"]["agent_id"] = agent_id
    return req


def assert_mismatch(err: AuthorizationError) -> None:
    assert err.code == "AGENT_MISMATCH"
    assert err.category == "authorization"
    assert err.http_status == 403
    assert err.path == "/requester/agent_id"
    assert MISMATCH_MESSAGE in err.message
    assert "agent-1" not in str(err) and "intruder" not in str(err)


# -- 1. a request speaks for its session's agent only ----------------------------------


def test_a_resolve_for_another_agent_is_refused_and_recorded(h: Harness) -> None:
    n = h.count()
    with pytest.raises(AuthorizationError) as info:
        h.rt.resolve(as_agent(h.resolve_request(), "intruder"))
    assert_mismatch(info.value)
    events = h.events(start=n)
    assert [e.event_type for e in events] == ["error.occurred"]
    assert events[0].payload["code"] == "AGENT_MISMATCH"
    assert h.rt.verify(h.sid).valid


def test_an_execute_for_another_agent_is_refused_and_changes_nothing(h: Harness) -> None:
    h.resolve()
    req = as_agent(h.execute_request("api.echo"), "intruder")
    n = h.count()
    with pytest.raises(AuthorizationError) as info:
        h.rt.execute(req)
    assert_mismatch(info.value)
    assert h.types(start=n) == ["error.occurred"]
    # The request id was not claimed: the same request, corrected, runs.
    req["requester"]["agent_id"] = "agent-1"
    assert h.rt.execute(req).status == "success"


def test_the_front_methods_refuse_too(h: Harness) -> None:
    front = cra.Runtime.resolve
    with pytest.raises(AuthorizationError):
        front(h.rt, as_agent(h.resolve_request(), "intruder"))
    h.resolve()
    with pytest.raises(AuthorizationError):
        cra.Runtime.execute(h.rt, as_agent(h.execute_request("api.echo"), "intruder"))


def test_validate_reports_another_agent_at_its_path(h: Harness) -> None:
    n = h.count()
    report = h.rt.validate(as_agent(h.resolve_request(), "intruder"))
    assert report["valid"] is False
    assert report["errors"] == [{"path": "/requester/agent_id", "message": MISMATCH_MESSAGE}]
    assert h.count() == n


def test_the_fast_resolver_speaks_for_the_session_agent(h: Harness) -> None:
    res = cra.fast.resolver(h.rt, h.sid).resolve("Operate")
    assert res.is_allowed("api.echo")


# -- 2. agent-scoped limits count against the session's agent --------------------------


def test_an_agent_budget_is_not_reset_by_another_agent_id_or_a_new_session() -> None:
    with Harness(ops_atlas(budget=2, budget_scope="agent")) as h:
        assert [h.execute("credit.use").status for _ in range(2)] == ["success"] * 2
        assert code(h.execute("credit.use")) == "BUDGET_EXCEEDED"
        # Stating another agent id is refused, not a fresh budget.
        with pytest.raises(AuthorizationError):
            h.rt.execute(as_agent(h.execute_request("credit.use"), "agent-2"))
        # A second session of the same agent shares the counter.
        other = h.session()
        assert code(h.execute("credit.use", sid=other)) == "BUDGET_EXCEEDED"
        # Another agent (its own session) has its own.
        third = h.session("agent-2")
        assert h.execute("credit.use", sid=third).status == "success"


def test_an_agent_rate_limit_is_shared_by_the_agents_sessions() -> None:
    with Harness(ops_atlas(rate=(1, 60), rate_scope="agent")) as h:
        assert h.execute("api.call", {"path": "/a"}).status == "success"
        with pytest.raises(AuthorizationError):
            h.rt.execute(as_agent(h.execute_request("api.call", {"path": "/b"}), "agent-9"))
        other = h.session()
        assert code(h.execute("api.call", {"path": "/b"}, sid=other)) == "RATE_LIMIT_EXCEEDED"


# -- 3. an execution passes the resolution's snapshot and the current one --------------


def allow_all(*extra_actions: dict[str, Any], **kw: Any) -> dict[str, Any]:
    """The ops atlas id, every action and nothing but one allow-all policy."""
    base = ops_atlas(**kw)
    actions = [
        a for a in base["actions"] if a["action_id"] not in {x["action_id"] for x in extra_actions}
    ]
    return make_atlas(
        OPS_ID,
        version="2.0.0",
        name="Operations",
        actions=[*actions, *extra_actions],
        policies=[policy("allow-all", "allow", ["*"])],
    )


def test_an_allow_all_atlas_loaded_later_does_not_lift_an_approval_gate(h: Harness) -> None:
    res = h.resolve()
    assert res.decision.approval_id is not None
    h.rt.load_atlas(allow_all(), replace=True)
    r = h.execute("payment.refund", {"order_id": "o-1", "amount": 20}, resolution=res)
    assert (r.status, code(r)) == ("pending_approval", "APPROVAL_REQUIRED")


def test_an_allow_all_atlas_loaded_later_does_not_lift_a_deny(h: Harness) -> None:
    res = h.resolve()
    h.rt.load_atlas(allow_all(), replace=True)
    r = h.execute("db.drop", resolution=res)
    assert (r.status, code(r)) == ("denied", "ACTION_NOT_ALLOWED")
    assert h.events()[-1].payload["policy_id"] == "never-drop"


def test_a_deny_added_later_applies_at_once(h: Harness) -> None:
    res = h.resolve()
    h.rt.load_atlas(
        ops_atlas(version="2.0.0", extra_policies=[policy("no-echo", "deny", ["api.echo"])]),
        replace=True,
    )
    r = h.execute("api.echo", resolution=res)
    assert (r.status, code(r)) == ("denied", "ACTION_NOT_ALLOWED")
    assert h.events()[-1].payload["policy_id"] == "no-echo"


def test_an_action_removed_since_the_resolution_is_denied(h: Harness) -> None:
    res = h.resolve()
    base = ops_atlas(version="2.0.0")
    base["actions"] = [a for a in base["actions"] if a["action_id"] != "api.echo"]
    h.rt.load_atlas(base, replace=True)
    r = h.execute("api.echo", resolution=res)
    assert (r.status, code(r)) == ("denied", "ACTION_NOT_ALLOWED")
    assert r.error is not None and "removed" in r.error.message
    assert "removed" in h.events()[-1].payload["reason"]


def test_parameters_pass_the_schema_of_the_resolution_and_the_current_one(h: Harness) -> None:
    res = h.resolve()
    loose = action("api.call", description="Call the API", parameters_schema={"type": "object"})
    h.rt.load_atlas(allow_all(loose), replace=True)
    # The schema the resolution was issued under still applies...
    r = h.execute("api.call", {"path": "no-slash"}, resolution=res)
    assert (r.status, code(r)) == ("error", "INVALID_PARAMETERS")
    assert h.execute("api.call", {"path": "/ok"}, resolution=res).status == "success"
    # ...and a stricter current one applies too.
    strict_schema = {**CALL_SCHEMA, "required": ["path", "retries"]}
    strict = action("api.call", description="Call the API", parameters_schema=strict_schema)
    h.rt.load_atlas(allow_all(strict), replace=True)
    r = h.execute("api.call", {"path": "/ok"}, resolution=res)
    assert (r.status, code(r)) == ("error", "INVALID_PARAMETERS")


def test_validate_checks_both_schemas(h: Harness) -> None:
    res = h.resolve()
    loose = action("api.call", description="Call the API", parameters_schema={"type": "object"})
    h.rt.load_atlas(allow_all(loose), replace=True)
    report = h.rt.validate(h.execute_request("api.call", {"path": "x"}, resolution=res))
    assert report["valid"] is False
    assert report["errors"][0]["path"].startswith("/execution/parameters")


def test_a_rate_limit_of_the_resolutions_snapshot_still_applies() -> None:
    with Harness(ops_atlas(rate=(1, 60))) as h1:
        res = h1.resolve()
        h1.rt.load_atlas(allow_all(), replace=True)
        assert h1.execute("api.call", {"path": "/a"}, resolution=res).status == "success"
        r = h1.execute("api.call", {"path": "/b"}, resolution=res)
        assert (r.status, code(r)) == ("denied", "RATE_LIMIT_EXCEEDED")


def test_a_limit_in_both_snapshots_counts_once() -> None:
    with Harness(ops_atlas(rate=(2, 60))) as h:
        res = h.resolve()
        h.rt.load_atlas(ops_atlas(version="2.0.0", rate=(2, 60)), replace=True)
        statuses = [
            h.execute("api.call", {"path": f"/{i}"}, resolution=res).status for i in range(3)
        ]
        assert statuses == ["success", "success", "denied"]


# -- 4. approvals: a bounded, printable note --------------------------------------------


def test_a_note_is_bounded_and_printable(h: Harness) -> None:
    h.execute("payment.refund", {"order_id": "o-1", "amount": 20})
    aid = h.resolution_of(h.sid).decision.approval_id
    assert aid is not None
    n = h.count()
    for bad in ("x" * 1001, "line\nbreak", "bell\x07", "del\x7f"):
        with pytest.raises(ValidationError) as info:
            h.rt.approve(aid, "alice", note=bad)
        assert (info.value.code, info.value.path) == ("INVALID_NOTE", "/note")
        with pytest.raises(ValidationError):
            h.rt.reject(aid, "alice", note=bad)
    assert h.count() == n
    assert len(h.rt.pending_approvals(h.sid)) == 1
    d = h.rt.approve(aid, "alice", note="é" * 1000)
    assert d["note"] == "é" * 1000
    assert h.events()[-1].payload["note"] == "é" * 1000
    assert h.rt.verify(h.sid).valid
