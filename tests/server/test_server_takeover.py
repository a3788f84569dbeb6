"""Security review, issue 13, finding 1: a session cannot be taken over after
a restart by spelling its id another way (upper case, no hyphens, braces,
`urn:uuid:`). Every id is read as a UUID at the server's boundary and used
in its one canonical form; owner rows are never replaced; with API keys a
caller cannot choose a session id at all.

Each test runs real `cra serve` processes on the same SQLite store.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import quote

import httpx
import pytest
from server_helpers import (
    KEY_A,
    KEY_B,
    LiveServer,
    assert_error,
    event_types,
    execute_body,
    new_session,
    resolve_body,
    resolved,
)
from websockets.sync.client import connect as ws_connect

#: Spellings of a session id that the runtime reads as the same UUID.
SPELLINGS: dict[str, Callable[[str], str]] = {
    "upper case": str.upper,
    "no hyphens": lambda s: s.replace("-", ""),
    "braces": lambda s: "{" + s + "}",
    "urn:uuid:": lambda s: "urn:uuid:" + s,
}


def _restart(server: LiveServer, tmp: Path, keys: str, store: Path) -> LiveServer:
    """Stops `server` and starts another on the store file `store`."""
    assert server.stop() in (0, -15), server.log()
    return LiveServer(tmp, keys=keys, CRA_STORE=str(store))


def _stream_first(server: LiveServer, key: Optional[str], session_id: str) -> dict[str, Any]:
    """The first message of the trace stream of `session_id` from sequence 0
    (an event, or the error of a refused subscription)."""
    url = server.url.replace("http", "ws") + "/v1/traces/stream"
    query = f"?session_id={quote(session_id)}&since_sequence=0"
    headers = {"X-API-Key": key} if key else {}
    with ws_connect(url + query, additional_headers=headers, open_timeout=10) as ws:
        first: dict[str, Any] = json.loads(ws.recv(timeout=10))
        if "error" in first:
            with pytest.raises(Exception):  # noqa: B017 (the close is the point)
                ws.recv(timeout=10)
            assert ws.close_code == 4000 + {"SESSION_NOT_FOUND": 404}[first["error"]["code"]]
        return first


def _still_healthy(c: httpx.Client, sid: str, before: list[str]) -> None:
    """The session's trace reads without a 500 and is unchanged; new events
    are still written (a fresh session resolves and its trace is there)."""
    assert event_types(c, sid) == before
    v = c.get(f"/v1/traces/{sid}/verify")
    assert v.status_code == 200 and v.json()["valid"] is True, v.text
    fresh = new_session(c)
    res = resolved(c, fresh)
    exe = execute_body(fresh, res["resolution_id"], "ticket.lookup", {"ticket_id": "T-1"})
    assert c.post("/v1/execute", json=exe).status_code == 200
    assert event_types(c, fresh)[-1] == "action.executed"


def test_another_key_cannot_take_a_session_over_after_a_restart(tmp_path: Path) -> None:
    keys = f"{KEY_A},{KEY_B}"
    first = LiveServer(tmp_path / "1", keys=keys)
    with first.client(KEY_A) as a:
        sid = new_session(a)
        resolved(a, sid)
        before = event_types(a, sid)
    second = _restart(first, tmp_path / "2", keys, first.store)
    try:
        with second.client(KEY_A) as a, second.client(KEY_B) as b:
            for name, spell in SPELLINGS.items():
                body = {"agent_id": "mallory", "goal": "Take over", "session_id": spell(sid)}
                err = assert_error(b.post("/v1/sessions", json=body), 400, "SESSION_ID_NOT_ALLOWED")
                assert err["details"]["path"] == "/session_id", name
                # B sees nothing of A's session under any spelling.
                for s in (sid, spell(sid)):
                    assert_error(b.get(f"/v1/sessions/{s}"), 404, "SESSION_NOT_FOUND")
                    assert_error(b.get(f"/v1/traces/{s}"), 404, "SESSION_NOT_FOUND")
                    err = assert_error(
                        b.post("/v1/validate", json=resolve_body(s)), 404, "SESSION_NOT_FOUND"
                    )
                    assert err["details"]["path"] == "/requester/session_id"
                # A keeps its session, under every spelling, in canonical form.
                got = a.get(f"/v1/sessions/{spell(sid)}")
                assert got.status_code == 200, (name, got.text)
                assert got.json()["session_id"] == sid
                assert a.get(f"/v1/traces/{spell(sid)}").json()[0]["session_id"] == sid
                # The trace stream, likewise.
                assert _stream_first(second, KEY_A, spell(sid))["session_id"] == sid
                err = _stream_first(second, KEY_B, spell(sid))["error"]
                assert err["code"] == "SESSION_NOT_FOUND"
            _still_healthy(a, sid, before)
            assert "UNIQUE" not in second.log()
    finally:
        second.stop()
    third = _restart(second, tmp_path / "3", keys, first.store)
    try:
        with third.client(KEY_A) as a, third.client(KEY_B) as b:
            assert_error(b.get(f"/v1/traces/{sid}"), 404, "SESSION_NOT_FOUND")
            assert_error(b.get(f"/v1/sessions/{sid}"), 404, "SESSION_NOT_FOUND")
            assert event_types(a, sid) == before
    finally:
        third.stop()


def test_without_keys_a_stored_id_in_another_spelling_is_taken(tmp_path: Path) -> None:
    """Single tenant: a caller-chosen id is still allowed, but every spelling
    of a stored session's id is 409, not a second chain on the same id."""
    first = LiveServer(tmp_path / "1")
    with first.client(None) as c:
        sid = new_session(c)
        resolved(c, sid)
        before = event_types(c, sid)
    second = _restart(first, tmp_path / "2", "", first.store)
    try:
        with second.client(None) as c:
            for name, spell in SPELLINGS.items():
                body = {"agent_id": "x", "goal": "Again", "session_id": spell(sid)}
                err = assert_error(c.post("/v1/sessions", json=body), 409, "SESSION_EXISTS")
                assert err["details"]["path"] == "/session_id", name
            # A new caller-chosen id, in upper case, is created in canonical form.
            wanted = "0199A1B2-C3D4-7E5F-8A6B-7C8D9E0F1A2B"
            r = c.post("/v1/sessions", json={"agent_id": "x", "goal": "g", "session_id": wanted})
            assert r.status_code == 201 and r.json()["session_id"] == wanted.lower()
            _still_healthy(c, sid, before)
            assert "UNIQUE" not in second.log()
    finally:
        second.stop()
