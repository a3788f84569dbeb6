"""The HTTP server (`cra serve`, python/cra/server): every endpoint of the
brief's §9 and its statuses, the §8 error shape, auth and ownership, NDJSON,
the body limit, garbage, the WebSocket stream, specs/openapi.yaml against the
routes, SIGTERM under load, and a bounded schemathesis run.

Most tests talk to a real `python -m cra serve` process on 127.0.0.1
(`LiveServer`); some use FastAPI's in-process client where that is simpler.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import cra
import httpx
import pytest
import yaml
from cra.cli import build_parser
from cra.server import ServerConfig, create_app
from cra.server.app import ROUTERS
from cra.server.state import load_atlas_dir
from cra.storage import SQLiteStore
from server_helpers import (
    EXAMPLE_ATLAS,
    EXECUTORS,
    KEY_A,
    KEY_B,
    ROOT,
    SUPPORT,
    LiveServer,
    TestClient,
    assert_error,
    atlas_dir,
    execute_body,
    inline_atlas,
    resolve_body,
)
from starlette.routing import WebSocketRoute
from websockets.sync.client import connect as ws_connect

OPENAPI = ROOT / "specs" / "openapi.yaml"
ZERO_UUID = "00000000-0000-4000-8000-000000000000"


# -- fixtures ------------------------------------------------------------------
@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server with two API keys for the module's live tests."""
    server = LiveServer(tmp_path_factory.mktemp("live"), keys=f"{KEY_A},{KEY_B}")
    yield server
    server.stop()


@pytest.fixture
def a(live: LiveServer) -> Iterator[httpx.Client]:
    with live.client(KEY_A) as c:
        yield c


@pytest.fixture
def b(live: LiveServer) -> Iterator[httpx.Client]:
    with live.client(KEY_B) as c:
        yield c


def make_app(tmp: Path, **config: Any) -> Any:
    settings: dict[str, Any] = {"store": str(tmp / "cra.db"), "atlas_dir": str(atlas_dir(tmp))}
    settings.update(config)
    return create_app(ServerConfig(**settings), executors=EXECUTORS)


@pytest.fixture
def local(tmp_path: Path) -> Iterator[TestClient]:
    """An in-process client of an app without keys."""
    with TestClient(make_app(tmp_path), raise_server_exceptions=False) as c:
        yield c


def new_session(c: Any, agent_id: str = "agent-1", goal: str = "Help a customer") -> str:
    r = c.post("/v1/sessions", json={"agent_id": agent_id, "goal": goal})
    assert r.status_code == 201, r.text
    sid: str = r.json()["session_id"]
    return sid


def resolved(c: Any, sid: str, goal: str = "Refund and reply to ticket T-1", **kw: Any) -> Any:
    r = c.post("/v1/resolve", json=resolve_body(sid, goal, **kw))
    assert r.status_code == 200, r.text
    return r.json()


def event_types(c: Any, sid: str) -> list[str]:
    r = c.get(f"/v1/traces/{sid}")
    assert r.status_code == 200, r.text
    return [e["event_type"] for e in r.json()]


# -- health and auth -----------------------------------------------------------
def test_health_needs_no_key(live: LiveServer) -> None:
    with live.client(None) as c:
        r = c.get("/v1/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["auth"] is True and body["atlases"] == 1
    assert body["protocols"] == {"carp": "1.0", "trace": "1.0", "atlas": "1.0"}


PROTECTED = [
    ("POST", "/v1/sessions"),
    ("GET", "/v1/sessions"),
    ("GET", f"/v1/sessions/{ZERO_UUID}"),
    ("DELETE", f"/v1/sessions/{ZERO_UUID}"),
    ("POST", "/v1/resolve"),
    ("POST", "/v1/execute"),
    ("POST", "/v1/validate"),
    ("GET", "/v1/approvals"),
    ("POST", f"/v1/approvals/{ZERO_UUID}"),
    ("GET", f"/v1/traces/{ZERO_UUID}"),
    ("GET", f"/v1/traces/{ZERO_UUID}/verify"),
    ("POST", f"/v1/traces/{ZERO_UUID}/verify"),
    ("GET", "/v1/atlases"),
    ("POST", "/v1/atlases"),
    ("GET", f"/v1/atlases/{SUPPORT}"),
    ("PUT", f"/v1/atlases/{SUPPORT}"),
    ("DELETE", f"/v1/atlases/{SUPPORT}"),
]


def test_every_endpoint_but_health_needs_a_key(live: LiveServer) -> None:
    with live.client(None) as anon, live.client("not-a-key") as wrong:
        for method, path in PROTECTED:
            r = anon.request(method, path, json={})
            assert_error(r, 401, "API_KEY_REQUIRED")
            assert "Bearer" in r.headers["www-authenticate"]
            assert_error(wrong.request(method, path, json={}), 401, "API_KEY_INVALID")
    # The atlas survived every attempt.
    with live.client() as c:
        assert c.get(f"/v1/atlases/{SUPPORT}").status_code == 200


def test_bearer_token_is_a_key(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {KEY_B}"}) as c:
        assert c.get("/v1/sessions").status_code == 200
    with httpx.Client(base_url=live.url, headers={"Authorization": "Bearer nope"}) as c:
        assert_error(c.get("/v1/sessions"), 401, "API_KEY_INVALID")


def test_another_key_gets_404_for_a_session(a: httpx.Client, b: httpx.Client) -> None:
    sid = new_session(a)
    res = resolved(a, sid)
    approval = res["decision"]["approval_id"]
    assert (
        a.post(
            "/v1/execute",
            json=execute_body(
                sid, res["resolution_id"], "refund.issue", {"order_id": "o-1", "amount": 5}
            ),
        ).status_code
        == 202
    )
    before = event_types(a, sid)

    assert_error(b.get(f"/v1/sessions/{sid}"), 404, "SESSION_NOT_FOUND")
    assert_error(b.delete(f"/v1/sessions/{sid}"), 404, "SESSION_NOT_FOUND")
    assert_error(b.get(f"/v1/traces/{sid}"), 404, "SESSION_NOT_FOUND")
    assert_error(b.get(f"/v1/traces/{sid}/verify"), 404, "SESSION_NOT_FOUND")
    assert_error(b.post(f"/v1/traces/{sid}/verify"), 404, "SESSION_NOT_FOUND")
    assert_error(b.get("/v1/approvals", params={"session_id": sid}), 404, "SESSION_NOT_FOUND")
    grant = {"decision": "grant", "approver": "mallory"}
    assert_error(b.post(f"/v1/approvals/{approval}", json=grant), 404, "APPROVAL_NOT_FOUND")
    err = assert_error(b.post("/v1/resolve", json=resolve_body(sid)), 404, "SESSION_NOT_FOUND")
    assert err["details"]["path"] == "/requester/session_id"
    exe = execute_body(sid, res["resolution_id"], "ticket.lookup", {"ticket_id": "T-1"})
    assert_error(b.post("/v1/execute", json=exe), 404, "SESSION_NOT_FOUND")
    assert_error(b.post("/v1/validate", json=resolve_body(sid)), 404, "SESSION_NOT_FOUND")
    child = {"agent_id": "x", "goal": "g", "parent_session_id": sid}
    assert_error(b.post("/v1/sessions", json=child), 404, "SESSION_NOT_FOUND")
    # Nothing B did reached A's chain; lists show B nothing of A's.
    assert event_types(a, sid) == before
    assert sid not in {s["session_id"] for s in b.get("/v1/sessions").json()["sessions"]}
    assert all(p["session_id"] != sid for p in b.get("/v1/approvals").json()["approvals"])
    assert any(p["approval_id"] == approval for p in a.get("/v1/approvals").json()["approvals"])


# -- sessions --------------------------------------------------------------------
def test_session_lifecycle(a: httpx.Client) -> None:
    r = a.post("/v1/sessions", json={"agent_id": "agent-7", "goal": "Answer ticket T-9"})
    assert r.status_code == 201
    s = r.json()
    assert s["status"] == "active" and s["agent_id"] == "agent-7" and s["ended_at"] is None
    sid = s["session_id"]
    assert a.get(f"/v1/sessions/{sid}").json() == s

    wanted = str(uuid.uuid4())
    child = a.post(
        "/v1/sessions",
        json={
            "agent_id": "agent-7",
            "goal": "Sub-task",
            "session_id": wanted,
            "parent_session_id": sid,
        },
    )
    assert child.status_code == 201 and child.json()["session_id"] == wanted
    assert child.json()["parent_session_id"] == sid
    again = {"agent_id": "agent-7", "goal": "Again", "session_id": wanted}
    assert_error(a.post("/v1/sessions", json=again), 409, "SESSION_EXISTS")

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
    bad_id = {"agent_id": "a", "goal": "g", "session_id": "not-a-uuid"}
    assert_error(a.post("/v1/sessions", json=bad_id), 400, "INVALID_REQUEST")
    assert_error(a.get(f"/v1/sessions/{uuid.uuid4()}"), 404, "SESSION_NOT_FOUND")
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


def test_budget_is_429_without_retry_after(a: httpx.Client) -> None:
    agent = f"budget-{uuid.uuid4().hex[:8]}"  # the budget is per agent
    sid = new_session(a, agent)
    res = resolved(a, sid, "Refund the order", agent_id=agent)
    grant = {
        "decision": "grant",
        "approver": "lead",
        "action_id": "refund.issue",
        "scope": "resolution",
    }
    assert a.post(f"/v1/approvals/{res['decision']['approval_id']}", json=grant).status_code == 200
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


def test_approvals(a: httpx.Client) -> None:
    sid = new_session(a)
    res = resolved(a, sid)
    aid = res["decision"]["approval_id"]
    params = {"order_id": "o-9", "amount": 30}
    body = execute_body(sid, res["resolution_id"], "refund.issue", params)
    assert a.post("/v1/execute", json=body).status_code == 202
    waiting = a.get("/v1/approvals", params={"session_id": sid}).json()["approvals"]
    assert [(w["approval_id"], w["parameters"]) for w in waiting] == [(aid, params)]

    assert_error(a.post(f"/v1/approvals/{aid}", json={"decision": "maybe", "approver": "x"}), 400)
    assert_error(a.post(f"/v1/approvals/{aid}", json={"decision": "grant"}), 400)
    only_grant = {"decision": "reject", "approver": "x", "scope": "resolution"}
    assert_error(a.post(f"/v1/approvals/{aid}", json=only_grant), 400)
    assert_error(
        a.post(f"/v1/approvals/{uuid.uuid4()}", json={"decision": "grant", "approver": "x"}), 404
    )

    r = a.post(f"/v1/approvals/{aid}", json={"decision": "grant", "approver": "lead", "note": "ok"})
    assert r.status_code == 200
    granted = r.json()
    assert (
        granted["granted"] is True and granted["approver"] == "lead" and granted["scope"] == "once"
    )
    body = execute_body(sid, res["resolution_id"], "refund.issue", params)
    done = a.post("/v1/execute", json=body)
    assert done.status_code == 200 and done.json()["result"] == {"order_id": "o-9", "refunded": 30}
    assert a.get("/v1/approvals", params={"session_id": sid}).json()["approvals"] == []

    res2 = resolved(a, sid)
    r = a.post(
        f"/v1/approvals/{res2['decision']['approval_id']}",
        json={"decision": "reject", "approver": "lead"},
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
def test_atlas_management(a: httpx.Client) -> None:
    atlas_id = f"org.test.inline{uuid.uuid4().hex[:6]}"
    assert SUPPORT in [x["atlas_id"] for x in a.get("/v1/atlases").json()["atlases"]]
    r = a.post(
        "/v1/atlases",
        json=inline_atlas(atlas_id),
        headers={"Content-Type": "application/vnd.cra.atlas+json"},
    )
    assert r.status_code == 201 and r.json()["actions"] == ["note.read"]
    assert_error(a.post("/v1/atlases", json=inline_atlas(atlas_id)), 409, "ATLAS_ALREADY_LOADED")

    got = a.get(f"/v1/atlases/{atlas_id}", headers={"Accept": "application/vnd.cra.atlas+json"})
    assert (
        got.status_code == 200 and got.headers["content-type"] == "application/vnd.cra.atlas+json"
    )
    assert got.json()["version"] == "1.0.0"

    r = a.put(f"/v1/atlases/{atlas_id}", json=inline_atlas(atlas_id, "1.1.0"))
    assert r.status_code == 200 and r.json()["version"] == "1.1.0"
    assert a.get(f"/v1/atlases/{atlas_id}").json()["version"] == "1.1.0"
    other = f"{atlas_id}.two"
    second = inline_atlas(other, action_id="memo.read")
    assert a.put(f"/v1/atlases/{other}", json=second).status_code == 201
    err = assert_error(a.put(f"/v1/atlases/{atlas_id}", json=second), 400)
    assert err["details"]["path"] == "/atlas_id"
    err = assert_error(
        a.post("/v1/atlases", json={"atlas_version": "1.0", "atlas_id": "Bad"}),
        400,
        "ATLAS_INVALID",
    )
    assert err["details"]["errors"]
    with_file = inline_atlas(f"{atlas_id}.file", action_id="file.read")
    with_file["context_packs"] = [{"pack_id": "p", "name": "P", "files": ["../../etc/passwd"]}]
    assert_error(a.post("/v1/atlases", json=with_file), 400, "ATLAS_INVALID")

    sid = new_session(a)
    res = resolved(a, sid, "Read the notes", atlas_ids=[atlas_id])
    assert [x["action_id"] for x in res["allowed_actions"]] == ["note.read"]

    for aid in (atlas_id, other):
        assert a.delete(f"/v1/atlases/{aid}").status_code == 204
        assert_error(a.get(f"/v1/atlases/{aid}"), 404, "ATLAS_NOT_FOUND")
    assert_error(a.delete(f"/v1/atlases/{atlas_id}"), 404, "ATLAS_NOT_FOUND")
    assert_error(a.post("/v1/resolve", json=resolve_body(sid, atlas_ids=[atlas_id])), 404)


# -- bodies, garbage ----------------------------------------------------------------
def test_body_limit_is_413(a: httpx.Client, live: LiveServer) -> None:
    sid = new_session(a)
    big = resolve_body(sid)
    big["context"] = {"blob": "x" * (1 << 20)}
    err = assert_error(a.post("/v1/resolve", json=big), 413, "PAYLOAD_TOO_LARGE")
    assert err["details"]["limit"] == 1 << 20

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(20):
            yield b" " * (64 * 1024)

    assert_error(a.post("/v1/atlases", content=chunks()), 413, "PAYLOAD_TOO_LARGE")
    assert a.get(f"/v1/sessions/{sid}").status_code == 200  # still serving


GARBAGE_BODIES: list[bytes] = [
    b"",
    b"   ",
    b"{",
    b"nul",
    b"[]",
    b'"text"',
    b"42",
    b"null",
    b"true",
    b'{"a": NaN}',
    b'{"a": Infinity}',
    b'{"a": 1e999}',
    b'{"a": "\\ud800"}',
    b'{"\\udfff": 1}',
    b'{"agent_id": "\\ud800", "goal": "g"}',
    b'{"a": 1' + b"0" * 5000 + b"}",
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    b"\xff\xfe\x00garbage",
    b"\xef\xbb\xbf{}",
    b'{"carp_version": "1.0", "requester": {"session_id": 5}}',
    b'{"carp_version": "1.0", "requester": [], "task": "x"}',
    b'{"decision": ["grant"], "approver": {}}',
    b'{"atlas_version": "1.0", "atlas_id": {"x": 1}, "actions": 7}',
    b'{"atlas_version": "1.0", "atlas_id": "a.b", "version": "1.0.0", "name": "n", '
    b'"context_packs": [{"pack_id": "p", "name": "n", "files": ["/etc/passwd"]}]}',
    b'{"agent_id": "a", "goal": "g", "session_id": "' + ZERO_UUID.encode() + b'", '
    b'"parent_session_id": 12}',
]

BODY_ENDPOINTS = [
    ("POST", "/v1/sessions"),
    ("POST", "/v1/resolve"),
    ("POST", "/v1/execute"),
    ("POST", "/v1/validate"),
    ("POST", f"/v1/approvals/{ZERO_UUID}"),
    ("POST", "/v1/approvals/not-a-uuid"),
    ("POST", "/v1/atlases"),
    ("PUT", "/v1/atlases/a.b"),
]

GARBAGE_PATHS = [
    "/v1/sessions/not-a-uuid",
    "/v1/sessions/%ED%A0%80",
    "/v1/sessions/" + "a" * 5000,
    "/v1/traces/%00",
    "/v1/traces/x/verify",
    "/v1/traces/stream",
    "/v1/atlases/%ED%A0%80",
    "/v1/atlases/..%2F..%2Fetc",
    "/v1/approvals?session_id=%ED%A0%80",
    "/v1/sessions?limit=99999999999999999999999999&offset=-3",
    "/v1/sessions?status=%00",
    f"/v1/traces/{ZERO_UUID}?since_sequence=1e9&limit=%20",
    f"/v1/traces/{ZERO_UUID}?since_sequence=99999999999999999999999",
    "/v1/nothing/here",
]


def _assert_not_5xx(r: httpx.Response, what: str) -> None:
    assert r.status_code < 500, (what, r.status_code, r.text[:300])
    if r.status_code >= 400:
        assert_error(r, r.status_code)


def test_garbage_never_answers_500(a: httpx.Client) -> None:
    for method, path in BODY_ENDPOINTS:
        for body in GARBAGE_BODIES:
            r = a.request(method, path, content=body, headers={"Content-Type": "application/json"})
            _assert_not_5xx(r, f"{method} {path} {body[:60]!r}")
            if r.status_code == 200:  # validate answers "invalid", never acts
                assert path == "/v1/validate" and r.json()["valid"] is False, (body[:60], r.text)
            else:
                assert r.status_code in (400, 404, 409), (method, path, body[:60], r.text[:200])
    for path in GARBAGE_PATHS:
        for method in ("GET", "POST", "DELETE", "PUT", "PATCH"):
            _assert_not_5xx(a.request(method, path, content=b"{}"), f"{method} {path}")
    r = a.post("/v1/resolve", content=b"{}", headers={"Content-Type": "text/plain"})
    assert_error(r, 415, "UNSUPPORTED_MEDIA_TYPE")
    r = a.post(
        "/v1/resolve", content=b"a=1", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert_error(r, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert_error(a.put("/v1/health"), 405, "METHOD_NOT_ALLOWED")
    assert a.get("/v1/health").status_code == 200


def test_request_id_in_errors(a: httpx.Client) -> None:
    r = a.post("/v1/resolve", content=b"{", headers={"X-Request-ID": "req-77"})
    assert assert_error(r, 400)["request_id"] == "req-77"
    body = resolve_body(str(uuid.uuid4()))
    assert assert_error(a.post("/v1/resolve", json=body), 404)["request_id"] == body["request_id"]


# -- WebSocket -------------------------------------------------------------------
def test_websocket_stream_live(live: LiveServer, a: httpx.Client) -> None:
    sid = new_session(a)
    url = live.url.replace("http", "ws") + f"/v1/traces/stream?session_id={sid}&since_sequence=0"
    with ws_connect(url, additional_headers={"X-API-Key": KEY_A}, open_timeout=10) as ws:
        first = json.loads(ws.recv(timeout=10))
        assert first["sequence"] == 0 and first["event_type"] == "session.started"
        resolved(a, sid)
        seen = [first]
        while seen[-1]["event_type"] != "carp.resolution.completed":
            seen.append(json.loads(ws.recv(timeout=10)))
    assert [e["sequence"] for e in seen] == list(range(len(seen)))
    assert seen == a.get(f"/v1/traces/{sid}").json()

    for key, close_code, code in (
        (KEY_B, 4404, "SESSION_NOT_FOUND"),
        (None, 4401, "API_KEY_REQUIRED"),
    ):
        headers = {"X-API-Key": key} if key else {}
        with ws_connect(url, additional_headers=headers, open_timeout=10) as ws:
            assert json.loads(ws.recv(timeout=10))["error"]["code"] == code
            with pytest.raises(Exception):  # noqa: B017 (the close is the point)
                ws.recv(timeout=10)
            assert ws.close_code == close_code


def test_websocket_all_sessions_in_process(local: TestClient) -> None:
    with local.websocket_connect("/v1/traces/stream") as ws:
        sid = new_session(local)
        e = ws.receive_json()
        assert e["session_id"] == sid and e["event_type"] == "session.started"
    with local.websocket_connect("/v1/traces/stream?since_sequence=3") as ws:
        assert ws.receive_json()["error"]["code"] == "INVALID_REQUEST"
    with local.websocket_connect(f"/v1/traces/stream?session_id={uuid.uuid4()}") as ws:
        assert ws.receive_json()["error"]["code"] == "SESSION_NOT_FOUND"


# -- in-process: fast path, media types, catch-all, config ---------------------------
def _resolve_script(c: TestClient) -> list[Any]:
    """Statuses, content types and bodies (ids masked) of a fixed set of resolves."""
    sid = new_session(c)
    rid = str(uuid.UUID(int=7, version=4))
    out = []
    cases = [
        (resolve_body(sid, request_id=rid), {}),
        (resolve_body(sid, request_id=rid), {}),
        (resolve_body(sid), {"Accept": "application/vnd.cra.carp+json"}),
        ({"carp_version": "9"}, {}),
        (resolve_body(ZERO_UUID, request_id=str(uuid.UUID(int=8, version=4))), {}),
        ({"carp_version": "9"}, {"X-Request-ID": "r-1"}),
        (resolve_body(sid, atlas_ids=["x.y"]), {}),
    ]
    for body, headers in cases:
        r = c.post("/v1/resolve", json=body, headers=headers)
        data = r.json()
        if r.status_code == 200:
            data = sorted(data)
        else:
            data["error"]["message"] = data["error"]["message"].replace(sid, "S")
            data["error"]["request_id"] = data["error"]["request_id"] is not None
        out.append((r.status_code, r.headers["content-type"], data))
    for raw, ctype in ((b"{", "application/json"), (b"{}", "text/plain"), (b"x" * 2_000_000, None)):
        r = c.post("/v1/resolve", content=raw, headers={"Content-Type": ctype} if ctype else {})
        out.append((r.status_code, r.headers["content-type"], r.json()))
    return out


def test_fast_path_answers_like_the_route(tmp_path: Path) -> None:
    answers = []
    for fast in (True, False):
        app = make_app(tmp_path / str(fast), fast_resolve=fast)
        with TestClient(app, raise_server_exceptions=False) as c:
            answers.append(_resolve_script(c))
    assert answers[0] == answers[1]
    assert [a[0] for a in answers[0]] == [200, 409, 200, 400, 404, 400, 404, 400, 415, 413]


def test_vendor_media_types_are_accepted(local: TestClient) -> None:
    sid = new_session(local)
    for ctype in ("application/vnd.cra.carp+json", "application/json; charset=utf-8", None):
        headers = {"Content-Type": ctype} if ctype else {}
        body = json.dumps(resolve_body(sid)).encode()
        assert local.post("/v1/resolve", content=body, headers=headers).status_code == 200


def test_unexpected_failure_is_500_in_error_shape(local: TestClient) -> None:
    state = local.app.state.cra  # type: ignore[attr-defined]

    def broken() -> None:
        raise RuntimeError("disk on fire")

    state.runtime.atlases = broken
    err = assert_error(local.get("/v1/atlases"), 500, "INTERNAL_ERROR")  # type: ignore[arg-type]
    assert err["category"] == "internal" and err["details"] == {"exception": "RuntimeError"}
    assert "disk on fire" not in err["message"]


def test_without_keys_everything_is_visible(local: TestClient) -> None:
    sid = new_session(local)
    assert local.get(f"/v1/traces/{sid}").status_code == 200
    assert local.get("/v1/health").json()["auth"] is False


def test_traces_are_durable_after_shutdown(tmp_path: Path) -> None:
    with TestClient(make_app(tmp_path)) as c:
        sid = new_session(c)
        resolved(c, sid)
        n = len(event_types(c, sid))
    store = SQLiteStore(tmp_path / "cra.db")
    assert store.verify(sid).valid and store.verify(sid).event_count == n
    store.close()


def test_config_from_env_and_flags() -> None:
    env = {
        "CRA_PORT": "9001",
        "CRA_API_KEYS": " a , b ,",
        "CRA_CLOCK_SKEW": "off",
        "CRA_MAX_BODY_BYTES": "10",
        "CRA_ACCESS_LOG": "yes",
    }
    cfg = ServerConfig.from_env(env)
    assert (cfg.port, cfg.api_keys, cfg.clock_skew_seconds) == (9001, ("a", "b"), None)
    assert cfg.max_body_bytes == 10 and cfg.access_log is True and cfg.host == "127.0.0.1"
    assert "api_keys" not in repr(cfg)  # keys stay out of reprs
    args = build_parser().parse_args(["serve", "--port", "7000", "--store", ":memory:"])
    merged = cfg.with_args(args)
    assert (merged.port, merged.store, merged.api_keys) == (7000, ":memory:", ("a", "b"))
    with pytest.raises(ValueError, match="CRA_PORT"):
        ServerConfig.from_env({"CRA_PORT": "http"})
    with pytest.raises(ValueError):
        ServerConfig(port=70000).validated()
    assert ServerConfig.from_env({}).port == 8420


def test_serve_refuses_a_bad_setting() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "cra", "serve", "--port", "-5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "port" in r.stderr


def test_atlas_dir_loads_dependencies_in_order(tmp_path: Path) -> None:
    base = inline_atlas("org.test.base")
    top = inline_atlas("org.test.top", dependencies={"org.test.base": "^1.0.0"})
    top["actions"] = [{"action_id": "top.read", "name": "Read", "description": "Reads"}]
    top["capabilities"] = []
    top["policies"] = []
    (tmp_path / "1-top.json").write_text(json.dumps(top))
    (tmp_path / "2-base.json").write_text(json.dumps(base))
    shutil.copytree(EXAMPLE_ATLAS, tmp_path / "support")
    (tmp_path / "notes.txt").write_text("ignored")
    with cra.Runtime() as rt:
        loaded = load_atlas_dir(rt, str(tmp_path))
    assert sorted(loaded) == sorted(["org.test.base", "org.test.top", SUPPORT])


# -- specs/openapi.yaml against the routes --------------------------------------------
def _base_type(schema: dict[str, Any]) -> Optional[str]:
    if "anyOf" in schema:
        types = [s.get("type") for s in schema["anyOf"] if s.get("type") != "null"]
        return types[0] if types else None
    t = schema.get("type")
    return t if isinstance(t, str) else None


def _skeleton(doc: dict[str, Any]) -> dict[str, Any]:
    """What an API's description says about each operation, without prose."""
    out = {}
    default_security = doc.get("security")
    for path, item in doc["paths"].items():
        shared = item.get("parameters", [])
        for method, op in item.items():
            if method == "parameters":
                continue
            params = {
                (p["name"], p["in"]): (p.get("required", False), _base_type(p["schema"]))
                for p in [*shared, *op.get("parameters", [])]
            }
            body = op.get("requestBody")
            if body and "$ref" in body:
                body = doc["components"]["requestBodies"][body["$ref"].rsplit("/", 1)[1]]
            security = op.get("security", default_security)
            out[f"{method.upper()} {path}"] = {
                "parameters": params,
                "body": sorted(body["content"]) if body else None,
                "body_required": bool(body and body.get("required")),
                "statuses": sorted(op["responses"]),
                "security": sorted(k for s in security or [] for k in s),
            }
    return out


def test_openapi_yaml_matches_the_served_routes(tmp_path: Path) -> None:
    written = yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))
    app = make_app(tmp_path)
    served = app.openapi()
    assert _skeleton(written) == _skeleton(served)
    assert written["components"]["securitySchemes"] == served["components"]["securitySchemes"]
    sockets = {r.path for router in ROUTERS for r in router.routes if isinstance(r, WebSocketRoute)}
    assert sockets == set(written["x-websockets"])
    with TestClient(app) as c:
        for path in sockets:  # served, and answering
            with c.websocket_connect(f"{path}?session_id={ZERO_UUID}") as ws:
                assert ws.receive_json()["error"]["code"] == "SESSION_NOT_FOUND"
    assert written["info"]["version"] == cra.__version__


def test_answers_match_the_openapi_schemas(live: LiveServer, a: httpx.Client) -> None:
    """A few real answers checked against the written schemas (schemathesis
    below checks many more, generated ones)."""
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    doc = yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))

    def check(name: str, value: Any) -> None:
        schema = {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
        jsonschema_rs.validator_for(schema).validate(value)

    sid = new_session(a)
    check("Session", a.get(f"/v1/sessions/{sid}").json())
    res = resolved(a, sid)
    check("Resolution", res)
    r = a.post(
        "/v1/execute",
        json=execute_body(
            sid, res["resolution_id"], "refund.issue", {"order_id": "o", "amount": 1}
        ),
    )
    check("ExecuteResponse", r.json())
    check("PendingApprovals", a.get("/v1/approvals").json())
    check("TraceEvents", a.get(f"/v1/traces/{sid}").json())
    check("ChainVerification", a.get(f"/v1/traces/{sid}/verify").json())
    check("AtlasList", a.get("/v1/atlases").json())
    check("AtlasManifest", a.get(f"/v1/atlases/{SUPPORT}").json())
    check("Error", a.get(f"/v1/traces/{uuid.uuid4()}").json())
    check("SessionList", a.get("/v1/sessions").json())
    with live.client(None) as anon:
        check("Health", anon.get("/v1/health").json())


# -- SIGTERM under load ----------------------------------------------------------
class Load:
    """Threads that create sessions and post resolves and executes until told to stop."""

    def __init__(self, url: str, threads: int = 6) -> None:
        self.url = url
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.sessions: list[str] = []
        self.resolves: dict[str, int] = {}
        self.executes: dict[str, int] = {}
        self.other_statuses: list[int] = []
        self.threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        try:
            with httpx.Client(base_url=self.url, headers={"X-API-Key": KEY_A}, timeout=30) as c:
                while not self.stop.is_set():
                    r = c.post("/v1/sessions", json={"agent_id": "load", "goal": "Load"})
                    if r.status_code != 201:
                        self.other_statuses.append(r.status_code)
                        return
                    sid = r.json()["session_id"]
                    with self.lock:
                        self.sessions.append(sid)
                    for i in range(20):
                        r = c.post("/v1/resolve", json=resolve_body(sid, agent_id="load"))
                        if r.status_code != 200:
                            self.other_statuses.append(r.status_code)
                            return
                        self.resolves[sid] = self.resolves.get(sid, 0) + 1
                        body = execute_body(
                            sid,
                            r.json()["resolution_id"],
                            "ticket.lookup",
                            {"ticket_id": f"T-{i}"},
                            agent_id="load",
                        )
                        r = c.post("/v1/execute", json=body)
                        if r.status_code != 200:
                            self.other_statuses.append(r.status_code)
                            return
                        self.executes[sid] = self.executes.get(sid, 0) + 1
        except httpx.TransportError:
            return  # the server went away: the expected end

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)


def test_sigterm_under_load_flushes_every_trace(tmp_path: Path) -> None:
    server = LiveServer(tmp_path, keys=KEY_A)
    with Load(server.url) as load:
        deadline = time.monotonic() + 20
        while sum(load.resolves.values()) < 300 and time.monotonic() < deadline:
            time.sleep(0.05)
        code = server.stop(signal.SIGTERM)
    assert code in (0, -signal.SIGTERM), server.log()
    assert load.other_statuses == [] or set(load.other_statuses) <= {503}, load.other_statuses
    assert sum(load.resolves.values()) >= 300

    log = server.log()
    closing = re.findall(r"cra serve: closed; (\d+) events recorded, (\d+) written, 0 dropped", log)
    assert closing, log
    recorded, written = (int(n) for n in closing[-1])
    assert recorded == written

    store = SQLiteStore(server.store)
    total = 0
    for sid in load.sessions:
        v = store.verify(sid)
        assert v.valid, (sid, v)
        row = store.session(sid)
        assert row["event_count"] == row["last_sequence"] + 1 == v.event_count
        done = store.events(sid, event_type="carp.resolution.completed")
        executed = store.events(sid, event_type="action.executed")
        assert len(done) == load.resolves.get(sid, 0), sid
        assert len(executed) == load.executes.get(sid, 0), sid
        total += row["event_count"]
    assert len(store.sessions()) == len(load.sessions)
    assert total == recorded
    store.close()

    # A restarted server reads the old traces, for their owner only.
    again = LiveServer(tmp_path / "again", keys=f"{KEY_A},{KEY_B}", CRA_STORE=str(server.store))
    try:
        sid = load.sessions[0]
        with again.client(KEY_A) as c:
            assert len(c.get(f"/v1/traces/{sid}").json()) == store_count(server.store, sid)
            assert c.get(f"/v1/traces/{sid}/verify").json()["valid"] is True
            assert c.get(f"/v1/sessions/{sid}").json()["session_id"] == sid
            dup = {"agent_id": "x", "goal": "g", "session_id": sid}
            assert_error(c.post("/v1/sessions", json=dup), 409, "SESSION_EXISTS")
        with again.client(KEY_B) as c:
            assert_error(c.get(f"/v1/traces/{sid}"), 404, "SESSION_NOT_FOUND")
    finally:
        again.stop()


def store_count(path: Path, sid: str) -> int:
    store = SQLiteStore(path)
    try:
        return int(store.session(sid)["event_count"])
    finally:
        store.close()


# -- schemathesis ----------------------------------------------------------------
def test_schemathesis_finds_no_5xx_and_no_schema_violation(tmp_path: Path) -> None:
    st = Path(sys.executable).parent / "st"
    if not st.exists():
        pytest.skip("schemathesis is not installed")
    server = LiveServer(tmp_path, keys=KEY_A)
    try:
        cmd = [
            str(st),
            "run",
            str(OPENAPI),
            "--url",
            server.url,
            "-H",
            f"X-API-Key: {KEY_A}",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,"
            "response_headers_conformance,response_schema_conformance",
            "--max-examples",
            "25",
            "--seed",
            "6",
            "--workers",
            "2",
            "--request-timeout",
            "20",
            "--phases",
            "examples,coverage,fuzzing",
            "--suppress-health-check",
            "all",
        ]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    finally:
        code = server.stop()
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
    assert "Exception in ASGI application" not in server.log()
    assert code in (0, -signal.SIGTERM)
