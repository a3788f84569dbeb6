"""The WebSocket trace stream of the HTTP server, live and in process."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from server_helpers import (
    KEY_A,
    KEY_B,
    LiveServer,
    TestClient,
    new_session,
    resolved,
)
from websockets.sync.client import connect as ws_connect


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
