"""`cra serve` on a PostgreSQL store: refusing to start on a store it
cannot use (one line, exit 2, no password), and a store that goes away and
comes back: 503 `TRACE_UNAVAILABLE` meanwhile, `degraded` health, then
writing again with nothing acknowledged lost."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
from cra.storage import PostgresStore
from pg_server import PgServer, PgServerError, pg_unavailable_reason, unavailable
from server_helpers import LiveServer, atlas_dir, resolve_body


def serve_fails(store: str, tmp: Path, *extra: str) -> str:
    """Runs `cra serve` on `store`; it must exit 2 with one line."""
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "cra",
            "serve",
            "--port",
            "0",
            "--store",
            store,
            "--atlas-dir",
            str(atlas_dir(tmp)),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    return r.stderr


def test_an_unreachable_store_stops_the_server_with_one_line(tmp_path: Path) -> None:
    err = serve_fails("postgresql://cra:hunter2@127.0.0.1:1/cra", tmp_path)
    assert "hunter2" not in err
    assert "postgresql://cra@127.0.0.1:1/cra" in err


def test_an_outdated_schema_stops_the_server(pg_dsn: str, tmp_path: Path) -> None:
    PostgresStore(pg_dsn, ready=False).migrate(1)
    assert "cra store migrate" in serve_fails(pg_dsn, tmp_path)


def test_signing_keys_are_refused_with_postgresql(pg_dsn: str, tmp_path: Path) -> None:
    key = tmp_path / "k.pem"
    subprocess.run([sys.executable, "-m", "cra", "keys", "generate", str(key)], check=True)
    err = serve_fails(pg_dsn, tmp_path, "--signing-key", str(key))
    assert "signed checkpoints" in err


@pytest.fixture
def own_server() -> Iterator[PgServer]:
    """A server of this test's own, which it stops and starts again."""
    reason = pg_unavailable_reason()
    if reason:
        unavailable(reason)
    pg = PgServer()
    try:
        pg.start()
    except PgServerError as e:
        unavailable(str(e))
    yield pg
    pg.stop()


def test_a_store_that_goes_away_fails_requests_loudly_and_recovers(
    own_server: PgServer, tmp_path: Path
) -> None:
    server = LiveServer(tmp_path / "srv", CRA_STORE=own_server.dsn)
    try:
        with server.client(None) as c:
            sid = c.post("/v1/sessions", json={"agent_id": "agent-1", "goal": "g"}).json()[
                "session_id"
            ]
            assert c.post("/v1/resolve", json=resolve_body(sid)).status_code == 200
            own_server.pause()
            r = c.post("/v1/resolve", json=resolve_body(sid))
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "TRACE_UNAVAILABLE"
            assert "Retry-After" in r.headers
            health = c.get("/v1/health")
            assert health.status_code == 503 and health.json()["status"] == "degraded"
            own_server.resume()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                r = c.post("/v1/resolve", json=resolve_body(sid))
                if r.status_code == 200:
                    break
                time.sleep(0.2)
            assert r.status_code == 200, r.text
            assert c.get("/v1/health").status_code == 200
            # A flush reports a store failure seen since the last one once
            # (then the failure is over): a read after the outage may say so.
            v = c.get(f"/v1/traces/{sid}/verify")
            if v.status_code == 503:
                v = c.get(f"/v1/traces/{sid}/verify")
            assert v.status_code == 200 and v.json()["valid"], v.text
            events = c.get(f"/v1/traces/{sid}").json()
            assert [e["sequence"] for e in events] == list(range(len(events)))
    finally:
        server.stop()
