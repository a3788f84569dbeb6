"""Helpers of the HTTP server tests: a real `python -m cra serve` process on
loopback, the executors it runs (`--executors server_helpers:EXECUTORS`),
request builders, and checks of the protocol's error shape."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Optional

import cra
import httpx
from cra.server import ServerConfig, create_app

with warnings.catch_warnings():
    # Starlette's test client warns about httpx at import time.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient  # noqa: F401 (re-exported for the tests)

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
EXAMPLE_ATLAS = ROOT / "python" / "cra" / "examples" / "support"
SUPPORT = "dev.cra.example.support"
HOST = "127.0.0.1"

KEY_A, KEY_B = "key-alpha-0123456789", "key-beta-9876543210"
#: Keys of the other roles, with their names (`NAME:ROLE:KEY`).
KEY_APPROVER, KEY_ADMIN = "key-lead-approver-5555", "key-ops-admin-7777"
APPROVER_NAME, ADMIN_NAME = "lead", "ops"
#: The keys of the shared live server: two agents (bare keys), an approver, an admin.
LIVE_KEYS = (
    f"{KEY_A},{KEY_B},{APPROVER_NAME}:approver:{KEY_APPROVER},{ADMIN_NAME}:admin:{KEY_ADMIN}"
)

ERROR_KEYS = {"code", "message", "category", "recoverable", "details", "request_id"}


class CustomerServiceDown(RuntimeError):
    pass


def _lookup(ticket_id: str) -> dict[str, Any]:
    return {"ticket_id": ticket_id, "status": "open"}


def _reply(ticket_id: str, body: str) -> dict[str, Any]:
    return {"ticket_id": ticket_id, "sent": True, "chars": len(body)}


def _customer(email: str) -> dict[str, Any]:
    raise CustomerServiceDown("customer service down")


def _refund(order_id: str, amount: float) -> dict[str, Any]:
    return {"order_id": order_id, "refunded": amount}


#: What the live test server runs; `ticket.update` deliberately has none.
EXECUTORS = {
    "ticket.lookup": _lookup,
    "ticket.reply": _reply,
    "customer.lookup": _customer,
    "refund.issue": _refund,
}

#: The executors of the replica tests' atlas (`tests/pg/test_pg_replicas.py`).
REPLICA_EXECUTORS = {"ticket.lookup": _lookup, "refund.issue": _refund}


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def atlas_dir(tmp: Path) -> Path:
    """A directory holding a copy of the bundled example atlas."""
    d = tmp / "atlases"
    shutil.copytree(EXAMPLE_ATLAS, d / "support")
    return d


class LiveServer:
    """`python -m cra serve` in a subprocess, on a free loopback port."""

    def __init__(self, tmp: Path, *, keys: str = "", **env: str) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        self.tmp = tmp
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.store = tmp / "traces" / "cra.db"
        self.log_path = tmp / "server.log"
        environ = dict(os.environ)
        environ.update(
            CRA_HOST=HOST,
            CRA_STORE=str(self.store),
            CRA_ATLAS_DIR=str(atlas_dir(tmp)),
            CRA_API_KEYS=keys,
            CRA_EXECUTORS="server_helpers:EXECUTORS",
            CRA_LOG_LEVEL="info",
            PYTHONPATH=os.pathsep.join([str(TESTS), environ.get("PYTHONPATH", "")]),
        )
        environ.update(env)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cra", "serve", "--port", str(self.port)],
            env=environ,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._wait_healthy()

    def _wait_healthy(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"cra serve exited:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/v1/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        self.proc.kill()
        raise RuntimeError(f"cra serve did not answer within {timeout} s:\n{self.log()}")

    def client(self, key: Optional[str] = KEY_A, **kw: Any) -> httpx.Client:
        headers = {"X-API-Key": key} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kw)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Sends `sig` and waits for the process; returns its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def resolve_body(
    session_id: str, goal: str = "Look up ticket T-1", agent_id: str = "agent-1", **kw: Any
) -> dict[str, Any]:
    return cra.CARPRequest.resolve(session_id, agent_id, goal, **kw)


def execute_body(
    session_id: str,
    resolution_id: str,
    action_id: str,
    parameters: Optional[dict[str, Any]] = None,
    agent_id: str = "agent-1",
    **kw: Any,
) -> dict[str, Any]:
    return cra.CARPRequest.execute(
        session_id, agent_id, "Work", resolution_id, action_id, parameters, **kw
    )


def inline_atlas(
    atlas_id: str, version: str = "1.0.0", action_id: str = "note.read", **extra: Any
) -> dict[str, Any]:
    """A small manifest whose context is inline (no files), for HTTP loading;
    action ids are unique across loaded atlases, so each needs its own."""
    out: dict[str, Any] = {
        "atlas_version": "1.0",
        "atlas_id": atlas_id,
        "version": version,
        "name": "Inline test atlas",
        "description": "Loaded over HTTP",
        "capabilities": [{"capability_id": "notes", "name": "Notes", "actions": [action_id]}],
        "context_packs": [
            {"pack_id": "guide", "name": "Guide", "content": "Be brief.", "priority": 5}
        ],
        "actions": [{"action_id": action_id, "name": "Read a note", "description": "Reads"}],
        "policies": [{"policy_id": "allow-notes", "type": "allow", "actions": [action_id]}],
    }
    out.update(extra)
    return out


def assert_error(
    response: httpx.Response, status: int, code: Optional[str] = None
) -> dict[str, Any]:
    """The response is a §8 error body with this status (and code)."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    err: dict[str, Any] = body["error"]
    assert set(err) == ERROR_KEYS, err
    assert isinstance(err["message"], str) and err["message"]
    assert isinstance(err["recoverable"], bool) and isinstance(err["details"], dict)
    if code is not None:
        assert err["code"] == code, err
    return err


OPENAPI = ROOT / "specs" / "openapi.yaml"
ZERO_UUID = "00000000-0000-4000-8000-000000000000"


def make_app(tmp: Path, **config: Any) -> Any:
    settings: dict[str, Any] = {"store": str(tmp / "cra.db"), "atlas_dir": str(atlas_dir(tmp))}
    settings.update(config)
    return create_app(ServerConfig(**settings), executors=EXECUTORS)


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
