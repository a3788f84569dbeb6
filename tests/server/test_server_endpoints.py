"""The endpoints of the HTTP server (brief §9) and their statuses on a live
`python -m cra serve`: sessions, resolve, execute, budgets, approvals,
validate, traces with filters and NDJSON, verify, and atlas management.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import cra
import httpx
from server_helpers import (
    SUPPORT,
    assert_error,
    event_types,
    execute_body,
    inline_atlas,
    new_session,
    resolve_body,
    resolved,
)


# -- sessions --------------------------------------------------------------------
def test_session_lifecycle(a: httpx.Client) -> None:
    r = a.post("/v1/sessions", json={"agent_id": "agent-7", "goal": "Answer ticket T-9"})
    assert r.status_code == 201
    s = r.json()
    assert s["status"] == "active" and s["agent_id"] == "agent-7" and s["ended_at"] is None
    sid = s["session_id"]
    assert a.get(f"/v1/sessions/{sid}").json() == s

    child = a.post(
        "/v1/sessions",
        json={"agent_id": "agent-7", "goal": "Sub-task", "parent_session_id": sid.upper()},
    )
    assert child.status_code == 201 and child.json()["parent_session_id"] == sid
    wanted = child.json()["session_id"]
    # With keys the server mints every id: a chosen one is refused, whatever it is.
    for chosen in (str(uuid.uuid4()), wanted, "not-a-uuid"):
        again = {"agent_id": "agent-7", "goal": "Again", "session_id": chosen}
        err = assert_error(a.post("/v1/sessions", json=again), 400, "SESSION_ID_NOT_ALLOWED")
        assert err["details"]["path"] == "/session_id"

    listed = a.get("/v1/sessions", params={"status": "active", "limit": 10_000}).json()
    ids = [x["session_id"] for x in listed["sessions"]]
    assert sid in ids and wanted in ids and listed["total"] == len(ids)
    page = a.get("/v1/sessions", params={"limit": 1, "offset": 1}).json()
    assert len(page["sessions"]) == 1 and page["limit"] == 1 and page["offset"] == 1

    r = a.delete(f"/v1/sessions/{sid}", params={"reason": "done"})
    assert r.status_code == 204 and r.content == b""
    ended = a.get(f"/v1/sessions/{sid}").json()
    assert ended["status"] == "ended" and ended["end_reason"] == "done"
    assert_error(a.delete(f"/v1/sessions/{sid}"), 410, "SESSION_ENDED")
    assert sid in [
        x["session_id"] for x in a.get("/v1/sessions?status=ended&limit=10000").json()["sessions"]
    ]
    assert event_types(a, sid)[-1] == "session.ended"


def test_session_request_faults(a: httpx.Client) -> None:
    assert_error(a.post("/v1/sessions", json={"goal": "g"}), 400, "INVALID_REQUEST")
    err = assert_error(a.post("/v1/sessions", json={"agent_id": "", "goal": "g"}), 400)
    assert err["details"]["path"] == "/agent_id"
    err = assert_error(a.post("/v1/sessions", json={"agent_id": 5, "goal": "g"}), 400)
    assert err["details"]["path"] == "/agent_id"
    err = assert_error(a.post("/v1/sessions", json={"agent_id": "a", "goal": "g", "x": 1}), 400)
    assert err["details"]["path"] == "/x"
    bad_parent = {"agent_id": "a", "goal": "g", "parent_session_id": "not-a-uuid"}
    err = assert_error(a.post("/v1/sessions", json=bad_parent), 400, "INVALID_REQUEST")
    assert err["details"]["path"] == "/parent_session_id"
    assert_error(a.get(f"/v1/sessions/{uuid.uuid4()}"), 404, "SESSION_NOT_FOUND")
    for path in ("/v1/sessions/not-a-uuid", "/v1/traces/x", "/v1/traces/{x}/verify"):
        err = assert_error(a.get(path), 400, "INVALID_REQUEST")
        assert err["details"]["path"] == "/path/session_id"
    err = assert_error(a.get("/v1/approvals", params={"session_id": "x"}), 400)
    assert err["details"]["path"] == "/query/session_id"
    assert_error(a.get("/v1/sessions", params={"status": "sleeping"}), 400, "INVALID_REQUEST")
    assert_error(a.get("/v1/sessions", params={"limit": 0}), 400, "INVALID_REQUEST")


# -- CARP ------------------------------------------------------------------------
def test_resolve(a: httpx.Client) -> None:
    sid = new_session(a)
    body = resolve_body(sid, "Refund the order and reply")
    r = a.post("/v1/resolve", json=body, headers={"Accept": "application/vnd.cra.carp+json"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/vnd.cra.carp+json"
    res = r.json()
    assert res["request_id"] == body["request_id"] and res["decision"]["type"] == "partial"
    assert "refund.issue" in [x["action_id"] for x in res["allowed_actions"]]
    assert [d["action_id"] for d in res["denied_actions"]] == ["ticket.delete"]

    err = assert_error(a.post("/v1/resolve", json=body), 409, "DUPLICATE_REQUEST")
    assert err["request_id"] == body["request_id"]
    unknown = resolve_body(sid, atlas_ids=["com.nowhere.atlas"])
    assert_error(a.post("/v1/resolve", json=unknown), 404, "ATLAS_NOT_FOUND")
    bad = resolve_body(sid)
    bad["carp_version"] = "2.0"
    del bad["task"]
    err = assert_error(a.post("/v1/resolve", json=bad), 400, "INVALID_REQUEST")
    assert {"/carp_version", "/task"} <= {f["path"] for f in err["details"]["errors"]}
    assert_error(a.post("/v1/resolve", json=resolve_body(str(uuid.uuid4()))), 404)
    a.delete(f"/v1/sessions/{sid}")
    assert_error(a.post("/v1/resolve", json=resolve_body(sid)), 410, "SESSION_ENDED")


def test_execute_statuses(a: httpx.Client) -> None:
    sid = new_session(a)
    res = resolved(a, sid)
    rid = res["resolution_id"]

    def run(action: str, params: dict[str, Any], **kw: Any) -> httpx.Response:
        return a.post("/v1/execute", json=execute_body(sid, rid, action, params, **kw))

    ok = run("ticket.lookup", {"ticket_id": "T-1"})
    assert ok.status_code == 200 and ok.json()["status"] == "success"
    assert ok.json()["result"] == {"ticket_id": "T-1", "status": "open"}

    pending = run("refund.issue", {"order_id": "o-1", "amount": 20})
    assert pending.status_code == 202 and pending.json()["status"] == "pending_approval"
    details = pending.json()["error"]["details"]
    assert details["approval_id"] == res["decision"]["approval_id"]
    assert details["action_id"] == "refund.issue" and len(details["parameters_hash"]) == 64

    denied = run("ticket.delete", {"ticket_id": "T-1"})
    assert denied.status_code == 403 and denied.json()["status"] == "denied"
    assert denied.json()["error"]["code"] == "ACTION_NOT_ALLOWED"

    bad = run("ticket.lookup", {"ticket_id": 42})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "INVALID_PARAMETERS"
    assert bad.json()["error"]["details"]["errors"][0]["path"] == "/ticket_id"

    failed = run("customer.lookup", {"email": "ann@example.com"})
    assert failed.status_code == 502 and failed.json()["error"]["code"] == "EXECUTION_FAILED"
    assert failed.json()["error"]["message"] == "customer service down"
    none = run("ticket.update", {"ticket_id": "T-1", "status": "solved"})
    assert none.status_code == 502 and none.json()["error"]["code"] == "NO_EXECUTOR"

    reply = {"ticket_id": "T-1", "body": "On it"}
    assert [run("ticket.reply", reply).status_code for _ in range(2)] == [200, 200]
    limited = run("ticket.reply", reply)
    assert limited.status_code == 429 and limited.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    assert 55 <= int(limited.headers["retry-after"]) <= 60

    first = run("ticket.lookup", {"ticket_id": "T-2"}, idempotency_key="k-1")
    same = run("ticket.lookup", {"ticket_id": "T-2"}, idempotency_key="k-1")
    assert same.json()["execution_id"] == first.json()["execution_id"]
    other = run("ticket.lookup", {"ticket_id": "T-3"}, idempotency_key="k-1")
    assert_error(other, 409, "IDEMPOTENCY_CONFLICT")

    assert_error(a.post("/v1/execute", json=resolve_body(sid)), 400, "INVALID_REQUEST")
    gone = execute_body(sid, str(uuid.uuid4()), "ticket.lookup", {"ticket_id": "T-1"})
    assert_error(a.post("/v1/execute", json=gone), 404, "RESOLUTION_NOT_FOUND")


def test_budget_is_429_without_retry_after(a: httpx.Client, approver: httpx.Client) -> None:
    agent = f"budget-{uuid.uuid4().hex[:8]}"  # the budget is per agent
    sid = new_session(a, agent)
    res = resolved(a, sid, "Refund the order", agent_id=agent)
    grant = {"decision": "grant", "action_id": "refund.issue", "scope": "resolution"}
    aid = res["decision"]["approval_id"]
    assert approver.post(f"/v1/approvals/{aid}", json=grant).status_code == 200
    codes = []
    for i in range(4):
        body = execute_body(
            sid,
            res["resolution_id"],
            "refund.issue",
            {"order_id": f"o-{i}", "amount": 10},
            agent_id=agent,
        )
        r = a.post("/v1/execute", json=body)
        codes.append(r.status_code)
    assert codes == [200, 200, 200, 429]
    assert r.json()["error"]["code"] == "BUDGET_EXCEEDED" and "retry-after" not in r.headers


def test_approvals(a: httpx.Client, approver: httpx.Client) -> None:
    sid = new_session(a)
    res = resolved(a, sid)
    aid = res["decision"]["approval_id"]
    params = {"order_id": "o-9", "amount": 30}
    body = execute_body(sid, res["resolution_id"], "refund.issue", params)
    assert a.post("/v1/execute", json=body).status_code == 202
    waiting = a.get("/v1/approvals", params={"session_id": sid}).json()["approvals"]
    assert [(w["approval_id"], w["parameters"]) for w in waiting] == [(aid, params)]

    assert_error(approver.post(f"/v1/approvals/{aid}", json={"decision": "maybe"}), 400)
    assert_error(approver.post(f"/v1/approvals/{aid}", json={"note": "x"}), 400)
    only_grant = {"decision": "reject", "scope": "resolution"}
    assert_error(approver.post(f"/v1/approvals/{aid}", json=only_grant), 400)
    assert_error(approver.post(f"/v1/approvals/{aid}", json={"decision": "grant", "x": 1}), 400)
    assert_error(approver.post(f"/v1/approvals/{uuid.uuid4()}", json={"decision": "grant"}), 404)
    err = assert_error(approver.post("/v1/approvals/nope", json={"decision": "grant"}), 400)
    assert err["details"]["path"] == "/path/approval_id"

    r = approver.post(f"/v1/approvals/{aid.upper()}", json={"decision": "grant", "note": "ok"})
    assert r.status_code == 200
    granted = r.json()
    assert granted["granted"] is True and granted["approver"] == "lead"
    assert granted["scope"] == "once" and granted["approval_id"] == aid
    body = execute_body(sid, res["resolution_id"], "refund.issue", params)
    done = a.post("/v1/execute", json=body)
    assert done.status_code == 200 and done.json()["result"] == {"order_id": "o-9", "refunded": 30}
    assert a.get("/v1/approvals", params={"session_id": sid}).json()["approvals"] == []

    res2 = resolved(a, sid)
    r = approver.post(
        f"/v1/approvals/{res2['decision']['approval_id']}", json={"decision": "reject"}
    )
    assert r.status_code == 200 and r.json()["granted"] is False
    body = execute_body(sid, res2["resolution_id"], "refund.issue", params)
    rejected = a.post("/v1/execute", json=body)
    assert rejected.status_code == 403 and rejected.json()["error"]["code"] == "APPROVAL_REJECTED"
    approved = [
        e for e in a.get(f"/v1/traces/{sid}", params={"event_type": "action.approved"}).json()
    ]
    assert approved and approved[0]["payload"]["action_id"] == "refund.issue"


def test_validate(a: httpx.Client) -> None:
    sid = new_session(a)
    r = a.post("/v1/validate", json=resolve_body(sid))
    assert r.status_code == 200 and r.json() == {"valid": True, "errors": []}
    res = resolved(a, sid)
    bad = execute_body(sid, res["resolution_id"], "ticket.lookup", {"ticket_id": 3})
    bad["operation"] = "validate"
    r = a.post("/v1/validate", json=bad)
    assert r.status_code == 200 and r.json()["valid"] is False
    assert r.json()["errors"][0]["path"] == "/execution/parameters/ticket_id"
    assert a.post("/v1/validate", json={"nonsense": True}).json()["valid"] is False


# -- traces ----------------------------------------------------------------------
def test_traces_filters_and_ndjson(a: httpx.Client) -> None:
    sid = new_session(a)
    res = resolved(a, sid)
    a.post(
        "/v1/execute",
        json=execute_body(sid, res["resolution_id"], "ticket.lookup", {"ticket_id": "T-1"}),
    )
    everything = a.get(f"/v1/traces/{sid}")
    assert (
        everything.status_code == 200 and everything.headers["content-type"] == "application/json"
    )
    events = everything.json()
    assert [e["sequence"] for e in events] == list(range(len(events)))
    assert (
        events[0]["event_type"] == "session.started"
        and events[-1]["event_type"] == "action.executed"
    )
    assert cra.verify_chain(events).valid

    evaluated = a.get(f"/v1/traces/{sid}", params={"event_type": "policy.evaluated"}).json()
    assert len(evaluated) == 6 and {e["event_type"] for e in evaluated} == {"policy.evaluated"}
    tail = a.get(f"/v1/traces/{sid}", params={"since_sequence": 3, "limit": 2}).json()
    assert [e["sequence"] for e in tail] == [3, 4]
    assert a.get(f"/v1/traces/{sid}", params={"limit": 0}).json() == []
    assert_error(a.get(f"/v1/traces/{sid}", params={"since_sequence": -1}), 400, "INVALID_REQUEST")
    assert_error(a.get(f"/v1/traces/{sid}", params={"limit": "many"}), 400, "INVALID_REQUEST")

    for accept in ("application/x-ndjson", "application/vnd.cra.trace+jsonl"):
        r = a.get(f"/v1/traces/{sid}", headers={"Accept": accept})
        assert r.headers["content-type"] == accept
        assert r.text.endswith("\n")
        assert [json.loads(line) for line in r.text.splitlines()] == events
    vendor = a.get(f"/v1/traces/{sid}", headers={"Accept": "application/vnd.cra.trace+json"})
    assert vendor.headers["content-type"] == "application/vnd.cra.trace+json"
    assert vendor.json() == events
    assert_error(a.get(f"/v1/traces/{uuid.uuid4()}"), 404, "SESSION_NOT_FOUND")


def test_verify_get_and_post(a: httpx.Client) -> None:
    sid = new_session(a)
    resolved(a, sid)
    for method in ("GET", "POST"):
        r = a.request(method, f"/v1/traces/{sid}/verify")
        assert r.status_code == 200
        v = r.json()
        assert v["valid"] is True and v["error"] is None and v["algorithm"] == "sha256"
        assert v["event_count"] == len(event_types(a, sid)) and v["source"] == "store"
    assert_error(a.get(f"/v1/traces/{uuid.uuid4()}/verify"), 404, "SESSION_NOT_FOUND")


# -- atlases ---------------------------------------------------------------------
def test_atlas_management(a: httpx.Client, admin: httpx.Client) -> None:
    """Atlas management, by an admin key (test_server_roles: only admins)."""
    atlas_id = f"org.test.inline{uuid.uuid4().hex[:6]}"
    assert SUPPORT in [x["atlas_id"] for x in a.get("/v1/atlases").json()["atlases"]]
    r = admin.post(
        "/v1/atlases",
        json=inline_atlas(atlas_id),
        headers={"Content-Type": "application/vnd.cra.atlas+json"},
    )
    assert r.status_code == 201 and r.json()["actions"] == ["note.read"]
    assert_error(
        admin.post("/v1/atlases", json=inline_atlas(atlas_id)), 409, "ATLAS_ALREADY_LOADED"
    )

    got = a.get(f"/v1/atlases/{atlas_id}", headers={"Accept": "application/vnd.cra.atlas+json"})
    assert (
        got.status_code == 200 and got.headers["content-type"] == "application/vnd.cra.atlas+json"
    )
    assert got.json()["version"] == "1.0.0"

    r = admin.put(f"/v1/atlases/{atlas_id}", json=inline_atlas(atlas_id, "1.1.0"))
    assert r.status_code == 200 and r.json()["version"] == "1.1.0"
    assert a.get(f"/v1/atlases/{atlas_id}").json()["version"] == "1.1.0"
    other = f"{atlas_id}.two"
    second = inline_atlas(other, action_id="memo.read")
    assert admin.put(f"/v1/atlases/{other}", json=second).status_code == 201
    err = assert_error(admin.put(f"/v1/atlases/{atlas_id}", json=second), 400)
    assert err["details"]["path"] == "/atlas_id"
    err = assert_error(
        admin.post("/v1/atlases", json={"atlas_version": "1.0", "atlas_id": "Bad"}),
        400,
        "ATLAS_INVALID",
    )
    assert err["details"]["errors"]
    with_file = inline_atlas(f"{atlas_id}.file", action_id="file.read")
    with_file["context_packs"] = [{"pack_id": "p", "name": "P", "files": ["../../etc/passwd"]}]
    assert_error(admin.post("/v1/atlases", json=with_file), 400, "ATLAS_INVALID")

    sid = new_session(a)
    res = resolved(a, sid, "Read the notes", atlas_ids=[atlas_id])
    assert [x["action_id"] for x in res["allowed_actions"]] == ["note.read"]

    for aid in (atlas_id, other):
        assert admin.delete(f"/v1/atlases/{aid}").status_code == 204
        assert_error(a.get(f"/v1/atlases/{aid}"), 404, "ATLAS_NOT_FOUND")
    assert_error(admin.delete(f"/v1/atlases/{atlas_id}"), 404, "ATLAS_NOT_FOUND")
    assert_error(a.post("/v1/resolve", json=resolve_body(sid, atlas_ids=[atlas_id])), 404)
