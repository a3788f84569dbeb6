"""Security review, issue 13, finding 6: HTTP hygiene.

A server without keys on loopback answers only requests whose `Host` names
loopback and whose `Origin` (if any) is its own: a web page (or a DNS
rebinding page) cannot drive it. Bodies must be declared as JSON.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from cra.errors import CraError
from server_helpers import (
    LiveServer,
    TestClient,
    assert_error,
    inline_atlas,
    new_session,
    resolve_body,
)
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server without keys, bound to loopback, default allow-lists."""
    server = LiveServer(tmp_path_factory.mktemp("hygiene"), keys="")
    yield server
    server.stop()


def test_a_foreign_host_or_origin_cannot_load_an_atlas(open_server: LiveServer) -> None:
    allow_all = inline_atlas("dev.evil.allow", action_id="evil.read")
    text = json.dumps(allow_all)
    with open_server.client(None) as c:
        # A DNS rebinding page: its own host name, no Content-Type (a "simple" request).
        r = c.post("/v1/atlases", content=text, headers={"Host": "evil.example"})
        assert_error(r, 403, "HOST_NOT_ALLOWED")
        r = c.post(
            "/v1/atlases",
            content=text,
            headers={"Origin": "http://evil.example", "Content-Type": "text/plain"},
        )
        assert_error(r, 403, "ORIGIN_NOT_ALLOWED")
        # The fast path and the read endpoints are covered alike.
        sid = new_session(c)
        r = c.post("/v1/resolve", json=resolve_body(sid), headers={"Host": "evil.example:80"})
        assert_error(r, 403, "HOST_NOT_ALLOWED")
        r = c.get("/v1/atlases", headers={"Origin": "https://evil.example"})
        assert_error(r, 403, "ORIGIN_NOT_ALLOWED")
        assert "dev.evil.allow" not in c.get("/v1/atlases").text
        # Loopback names, with and without the port, and the server's own origin pass.
        for host in ("localhost", f"localhost:{open_server.port}", f"127.0.0.1:{open_server.port}"):
            assert c.get("/v1/health", headers={"Host": host}).status_code == 200, host
        own = {"Origin": f"http://localhost:{open_server.port}"}
        assert c.post("/v1/resolve", json=resolve_body(sid), headers=own).status_code == 200


def test_a_foreign_origin_cannot_open_the_stream(open_server: LiveServer) -> None:
    url = f"ws://127.0.0.1:{open_server.port}/v1/traces/stream"
    with pytest.raises(InvalidStatus) as e:
        with ws_connect(url, origin="http://evil.example", open_timeout=10):  # type: ignore[arg-type]
            pass
    assert e.value.response.status_code == 403
    with ws_connect(url, origin=f"http://127.0.0.1:{open_server.port}", open_timeout=10):  # type: ignore[arg-type]
        pass


def test_allowed_hosts_and_origins_are_configurable(tmp_path: Path) -> None:
    server = LiveServer(
        tmp_path,
        keys="",
        CRA_ALLOWED_HOSTS="cra.internal,127.0.0.1",
        CRA_ALLOWED_ORIGINS="https://console.example",
    )
    try:
        with server.client(None) as c:
            ok = {"Host": "cra.internal", "Origin": "https://console.example"}
            assert c.get("/v1/health", headers=ok).status_code == 200
            r = c.get("/v1/health", headers={"Host": "localhost"})
            assert_error(r, 403, "HOST_NOT_ALLOWED")
    finally:
        server.stop()


def test_health_from_a_foreign_host_is_refused_too(open_server: LiveServer) -> None:
    r = httpx.get(f"{open_server.url}/v1/health", headers={"Host": "attacker.test"})
    assert_error(r, 403, "HOST_NOT_ALLOWED")


def test_a_body_without_a_json_content_type_is_415(open_server: LiveServer) -> None:
    with open_server.client(None) as c:
        sid = new_session(c)
        text = json.dumps(resolve_body(sid))
        for path in ("/v1/resolve", "/v1/sessions"):
            r = c.post(path, content=text)  # no Content-Type at all
            assert "content-type" not in r.request.headers
            assert_error(r, 415, "UNSUPPORTED_MEDIA_TYPE")
        atlas = json.dumps(inline_atlas("dev.ct.none", action_id="ct.read"))
        assert_error(c.post("/v1/atlases", content=atlas), 415, "UNSUPPORTED_MEDIA_TYPE")
        assert_error(c.put("/v1/atlases/dev.ct.none", content=atlas), 415)
        vendor = {"Content-Type": "application/vnd.cra.carp+json; charset=utf-8"}
        assert c.post("/v1/resolve", content=text, headers=vendor).status_code == 200


def test_a_store_fault_answers_no_path_and_logs_the_detail(tmp_path: Path) -> None:
    server = LiveServer(tmp_path, keys="")
    try:
        with server.client(None) as c:
            sid = new_session(c)
            assert c.get(f"/v1/traces/{sid}").status_code == 200
            # The store's file is broken under the running server.
            for f in server.store.parent.iterdir():
                f.write_bytes(b"garbage " * (f.stat().st_size // 8 + 512))
            r = c.get(f"/v1/traces/{sid}", headers={"X-Request-ID": "req-store-1"})
            assert r.status_code >= 500, r.text
            err = assert_error(r, r.status_code)
            assert err["request_id"] == "req-store-1" and err["details"] == {}
            text = r.text.lower()
            assert str(tmp_path).lower() not in text and "/tmp" not in text
            assert "database" not in text and "sqlite" not in text, text
    finally:
        server.stop()
    # The log has the detail, after the line that names the request_id.
    log = server.log()
    assert "request_id=req-store-1" in log, log
    after = log[log.index("request_id=req-store-1") :]
    assert "not a database" in after and str(server.store) in after


def test_a_core_io_error_answers_no_path(
    local: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    state = local.app.state.cra  # type: ignore[attr-defined]
    sid = new_session(local)

    def broken(*args: object, **kw: object) -> None:
        raise CraError("/srv/cra/secret/cra.db: disk I/O error", code="IO_ERROR")

    state.store.events = broken
    with caplog.at_level(logging.ERROR, logger="cra.server"):
        r = local.get(f"/v1/traces/{sid}")
    err = assert_error(r, 500, "IO_ERROR")  # type: ignore[arg-type]
    assert "/srv" not in r.text and "disk I/O" not in r.text and err["details"] == {}
    rid = err["request_id"]
    assert rid and any(rid in m and "/srv/cra/secret" in m for m in caplog.messages)


def _stalled(port: int, data: bytes) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    if data:
        s.sendall(data)
    return s


def _closed_within(s: socket.socket, seconds: float) -> bool:
    """True if the server closes the connection within `seconds`."""
    s.settimeout(seconds)
    try:
        while s.recv(4096):
            pass
        return True
    except (socket.timeout, TimeoutError):
        return False
    except OSError:
        return True


def test_slow_headers_are_cut_and_connections_capped(tmp_path: Path) -> None:
    server = LiveServer(tmp_path, keys="", CRA_HEADER_TIMEOUT="1.5", CRA_MAX_CONNECTIONS="30")
    socks: list[socket.socket] = []
    try:
        started = time.monotonic()
        for i in range(20):  # half a request line, a header and no end, nothing at all
            data = (b"GET /v1/hea", b"GET /v1/health HTTP/1.1\r\nHost: localhost\r\n", b"")[i % 3]
            socks.append(_stalled(server.port, data))
        # Over the cap, uvicorn answers 503 (the stalled ones count).
        extra = [_stalled(server.port, b"") for _ in range(12)]
        socks.extend(extra)
        time.sleep(0.3)
        r = httpx.get(f"{server.url}/v1/health", timeout=5)
        assert r.status_code == 503, r.text
        for s in socks:
            assert _closed_within(s, 10), "a stalled connection was kept open"
        assert time.monotonic() - started < 12
        # And once they are gone, the server answers again.
        assert httpx.get(f"{server.url}/v1/health", timeout=5).status_code == 200
        # A request that completes its headers is not cut.
        with server.client(None) as c:
            assert c.get("/v1/health").status_code == 200
    finally:
        for s in socks:
            s.close()
        server.stop()


def test_a_corrupt_stored_event_verifies_false_not_500(local: TestClient) -> None:
    sid = new_session(local)
    assert local.post("/v1/resolve", json=resolve_body(sid)).status_code == 200
    st = local.app.state.cra  # type: ignore[attr-defined]
    st.runtime.flush(10)
    db, of_session = st.store._db, st.store._of_session
    for garbage in ("garbage{", '{"sequence": 1}', "[]"):
        # Through the store's own connection, as tests/audit_helpers.py tampers.
        sql = f"UPDATE events SET event = ? WHERE {of_session} AND sequence = ?"
        db.transaction([(sql, (garbage, sid, 1))])
        for r in (
            local.get(f"/v1/traces/{sid}/verify"),
            local.post(f"/v1/traces/{sid}/verify"),
        ):
            assert r.status_code == 200, r.text
            v = r.json()
            assert v["valid"] is False and v["error"] == "invalid_event", v
            assert v["index"] == 1 and v["source"] == "store" and v["event_count"] >= 2
            assert "line 1" not in v["message"]  # no parser text


@pytest.mark.parametrize("kind", ["under_a_file", "a_directory", "not_sqlite"])
def test_an_unusable_store_stops_serve_with_one_line(tmp_path: Path, kind: str) -> None:
    # As root, chmod does not stop reads: these are the failures root meets too.
    (tmp_path / "file").write_text("x")
    (tmp_path / "adir").mkdir()
    (tmp_path / "notdb.db").write_text("not a database " * 40)
    store = {"under_a_file": "file/cra.db", "a_directory": "adir", "not_sqlite": "notdb.db"}[kind]
    env = dict(os.environ, CRA_API_KEYS="", CRA_ATLAS_DIR="")
    r = subprocess.run(
        [sys.executable, "-m", "cra", "serve", "--port", "0", "--store", store],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cra serve cannot start:"), lines
