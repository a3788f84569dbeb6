"""Auth and ownership of the HTTP server (`cra serve`): health needs no key,
every other endpoint does, bearer tokens, and another key's sessions are not
found.
"""

from __future__ import annotations

import httpx
from server_helpers import (
    KEY_B,
    SUPPORT,
    ZERO_UUID,
    LiveServer,
    assert_error,
    event_types,
    execute_body,
    new_session,
    resolve_body,
    resolved,
)


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
    # An agent key decides no approval at all, its own or another's (test_server_roles).
    assert_error(b.post(f"/v1/approvals/{approval}", json={"decision": "grant"}), 403)
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
