"""Bodies and garbage sent to the HTTP server: the body limit is 413, garbage
never answers 500, and errors carry the request id (§8 error shape).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
from server_helpers import (
    ZERO_UUID,
    LiveServer,
    assert_error,
    new_session,
    resolve_body,
)

JSON_TYPE = {"Content-Type": "application/json"}


def test_body_limit_is_413(a: httpx.Client, admin: httpx.Client, live: LiveServer) -> None:
    sid = new_session(a)
    big = resolve_body(sid)
    big["context"] = {"blob": "x" * (1 << 20)}
    err = assert_error(a.post("/v1/resolve", json=big), 413, "PAYLOAD_TOO_LARGE")
    assert err["details"]["limit"] == 1 << 20

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(20):
            yield b" " * (64 * 1024)

    r = admin.post("/v1/atlases", content=chunks(), headers=JSON_TYPE)
    assert_error(r, 413, "PAYLOAD_TOO_LARGE")
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


def test_garbage_never_answers_500(admin: httpx.Client) -> None:
    """Sent with the admin key, which every endpoint lets through to the body."""
    a = admin
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
    r = a.post("/v1/resolve", content=b"{", headers={"X-Request-ID": "req-77", **JSON_TYPE})
    assert assert_error(r, 400)["request_id"] == "req-77"
    body = resolve_body(str(uuid.uuid4()))
    assert assert_error(a.post("/v1/resolve", json=body), 404)["request_id"] == body["request_id"]
