"""Several `cra serve` replicas on one PostgreSQL store (real processes on
loopback): limits exact across them, an approval granted through one
letting an execute on another run, a session moving between them with one
chain, idempotency keys shared, and `kill -9` of one under load losing
nothing it acknowledged."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

import cra
import pytest
from server_helpers import (
    KEY_ADMIN,
    KEY_APPROVER,
    KEY_B,
    LIVE_KEYS,
    LiveServer,
    execute_body,
    resolve_body,
)

ATLAS: Dict[str, Any] = {
    "atlas_version": "1.0",
    "atlas_id": "test.replicas",
    "version": "1.0.0",
    "name": "Replicas",
    "description": "One limited action and one gated action",
    "actions": [
        {
            "action_id": "ticket.lookup",
            "name": "Look up",
            "description": "Looks up a ticket",
            "parameters_schema": {
                "type": "object",
                "required": ["ticket_id"],
                "properties": {"ticket_id": {"type": "string"}},
            },
        },
        {
            "action_id": "refund.issue",
            "name": "Refund",
            "description": "Issues a refund",
            "parameters_schema": {
                "type": "object",
                "required": ["order_id", "amount"],
                "properties": {"order_id": {"type": "string"}, "amount": {"type": "number"}},
            },
        },
    ],
    "policies": [
        {
            "policy_id": "five-a-minute",
            "type": "rate_limit",
            "actions": ["ticket.lookup"],
            "parameters": {"max_calls": 5, "window_seconds": 60, "scope": "global"},
        },
        {"policy_id": "refunds-need-a-human", "type": "require_approval", "actions": ["refund.*"]},
        {"policy_id": "allow", "type": "allow", "actions": ["ticket.*", "refund.*"]},
    ],
}


def start(tmp: Path, dsn: str, n: int, keys: str = LIVE_KEYS) -> List[LiveServer]:
    atlases = tmp / "replica-atlases"
    atlases.mkdir(exist_ok=True)
    (atlases / "replicas.json").write_text(json.dumps(ATLAS))
    servers: List[LiveServer] = []
    try:
        for i in range(n):
            servers.append(
                LiveServer(
                    tmp / f"r{i}",
                    keys=keys,
                    CRA_STORE=dsn,
                    CRA_ATLAS_DIR=str(atlases),
                    CRA_EXECUTORS="server_helpers:REPLICA_EXECUTORS",
                )
            )
    except BaseException:
        for s in servers:
            s.stop(signal.SIGKILL)
        raise
    return servers


def start_open(tmp: Path, dsn: str, n: int) -> List[LiveServer]:
    """Replicas without API keys (a caller may choose a session id)."""
    return start(tmp, dsn, n, keys="")


@pytest.fixture
def three(tmp_path: Path, pg_dsn: str) -> Iterator[List[LiveServer]]:
    servers = start(tmp_path, pg_dsn, 3)
    yield servers
    for s in servers:
        s.stop()


def session_on(server: LiveServer, agent: str = "agent-1") -> str:
    with server.client() as c:
        r = c.post("/v1/sessions", json={"agent_id": agent, "goal": "work"})
        assert r.status_code == 201, r.text
        sid: str = r.json()["session_id"]
        return sid


def resolve_on(
    server: LiveServer, sid: str, goal: str = "look up and refund", agent: str = "agent-1"
) -> Dict[str, Any]:
    with server.client() as c:
        r = c.post("/v1/resolve", json=resolve_body(sid, goal, agent_id=agent))
        assert r.status_code == 200, r.text
        out: Dict[str, Any] = r.json()
        return out


def execute_on(server: LiveServer, body: Dict[str, Any]) -> Any:
    with server.client() as c:
        return c.post("/v1/execute", json=body)


def test_three_replicas_admit_exactly_the_limit(three: List[LiveServer]) -> None:
    """8 clients over 3 replicas, 16 attempts at a global 5-a-minute limit."""
    statuses: List[str] = []
    failures: List[BaseException] = []
    lock = threading.Lock()
    ready = threading.Barrier(8, timeout=60)

    def client(i: int) -> None:
        try:
            run(i)
        except BaseException as e:  # reported by the test, not lost in a thread
            failures.append(e)
            ready.abort()

    def run(i: int) -> None:
        server = three[i % 3]
        sid = session_on(server, f"agent-{i}")
        res = resolve_on(server, sid, "look up a ticket", agent=f"agent-{i}")
        ready.wait()
        for _ in range(2):
            body = execute_body(
                sid,
                res["resolution_id"],
                "ticket.lookup",
                {"ticket_id": "T-1"},
                agent_id=f"agent-{i}",
            )
            r = execute_on(server, body)
            assert r.status_code in (200, 429), r.text
            with lock:
                statuses.append(r.json().get("status") or r.json()["error"]["code"])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures
    assert len(statuses) == 16
    assert statuses.count("success") == 5, statuses


def test_an_approval_granted_on_b_lets_an_execute_on_c_run(three: List[LiveServer]) -> None:
    a, b, c = three
    sid = session_on(a)
    res = resolve_on(a, sid)
    approval_id = res["decision"]["approval_id"]
    assert approval_id
    params = {"order_id": "O-1", "amount": 12.5}
    first = execute_on(a, execute_body(sid, res["resolution_id"], "refund.issue", params))
    assert first.json()["status"] == "pending_approval", first.text
    with b.client(KEY_APPROVER) as approver:
        listed = approver.get("/v1/approvals").json()["approvals"]
        assert [p["approval_id"] for p in listed] == [approval_id]
        d = approver.post(f"/v1/approvals/{approval_id}", json={"decision": "grant"})
        assert d.status_code == 200, d.text
    ran = execute_on(c, execute_body(sid, res["resolution_id"], "refund.issue", params))
    assert ran.status_code == 200, ran.text
    assert ran.json()["status"] == "success"
    assert ran.json()["result"] == {"order_id": "O-1", "refunded": 12.5}
    # The grant was for one execution: used on C, it is used everywhere.
    again = execute_on(a, execute_body(sid, res["resolution_id"], "refund.issue", params))
    assert again.json()["status"] == "pending_approval", again.text


def test_a_session_moves_between_replicas_and_stays_one_chain(
    three: List[LiveServer], pg_dsn: str, tmp_path: Path
) -> None:
    a, b, c = three
    sid = session_on(a)
    res = resolve_on(a, sid, "look up a ticket")
    lookup = {"ticket_id": "T-7"}
    assert (
        execute_on(a, execute_body(sid, res["resolution_id"], "ticket.lookup", lookup)).status_code
        == 200
    )
    # B executes under the resolution A made; C resolves anew and executes.
    assert (
        execute_on(b, execute_body(sid, res["resolution_id"], "ticket.lookup", lookup)).status_code
        == 200
    )
    res_c = resolve_on(c, sid, "look up a ticket")
    assert (
        execute_on(
            c, execute_body(sid, res_c["resolution_id"], "ticket.lookup", lookup)
        ).status_code
        == 200
    )
    with a.client() as client:
        events = client.get(f"/v1/traces/{sid}").json()
        assert [e["sequence"] for e in events] == list(range(len(events)))
        assert sum(e["event_type"] == "action.executed" for e in events) == 3
        v = client.get(f"/v1/traces/{sid}/verify").json()
        assert v["valid"], v
        assert client.delete(f"/v1/sessions/{sid}").status_code == 204
    out = tmp_path / "moved.trace.jsonl"
    export = [sys.executable, "-m", "cra", "trace", "export", "--store", pg_dsn]
    assert subprocess.call([*export, "--session", sid, "--out", str(out)]) == 0
    assert cra.verify_jsonl(out).valid
    verify = subprocess.run(
        [sys.executable, "-m", "cra", "trace", "verify", str(out)], capture_output=True, text=True
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_an_idempotency_key_holds_across_replicas(three: List[LiveServer]) -> None:
    a, b, _ = three
    sid = session_on(a)
    res = resolve_on(a, sid, "look up a ticket")
    body = execute_body(
        sid, res["resolution_id"], "ticket.lookup", {"ticket_id": "T-9"}, idempotency_key="k-1"
    )
    first = execute_on(a, body).json()
    retry = execute_body(
        sid, res["resolution_id"], "ticket.lookup", {"ticket_id": "T-9"}, idempotency_key="k-1"
    )
    second = execute_on(b, retry).json()
    assert first["status"] == second["status"] == "success"
    assert second["execution_id"] == first["execution_id"]
    other = execute_body(
        sid, res["resolution_id"], "ticket.lookup", {"ticket_id": "T-10"}, idempotency_key="k-1"
    )
    conflict = execute_on(b, other)
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "IDEMPOTENCY_CONFLICT"


def test_kill_9_of_a_replica_loses_nothing_it_acknowledged(tmp_path: Path, pg_dsn: str) -> None:
    victim, survivor = start(tmp_path, pg_dsn, 2)
    acknowledged: Dict[str, List[str]] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def load(server: LiveServer) -> None:
        try:
            sid = session_on(server)
        except Exception:
            return
        with server.client() as c:
            while not stop.is_set():
                try:
                    r = c.post("/v1/resolve", json=resolve_body(sid, "look up a ticket"))
                except Exception:
                    return  # the server is gone
                if r.status_code == 200:
                    with lock:
                        acknowledged.setdefault(sid, []).append(r.json()["resolution_id"])

    threads = [threading.Thread(target=load, args=(s,)) for s in (victim, victim, victim, survivor)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait()
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join()
    assert sum(len(v) for v in acknowledged.values()) > 20
    with survivor.client(KEY_APPROVER) as c:
        for sid, ids in acknowledged.items():
            events = c.get(
                f"/v1/traces/{sid}", params={"event_type": "carp.resolution.completed"}
            ).json()
            stored = {e["payload"]["resolution_id"] for e in events}
            missing = [i for i in ids if i not in stored]
            assert not missing, f"{len(missing)} acknowledged resolutions lost in {sid}"
            v = c.get(f"/v1/traces/{sid}/verify").json()
            assert v["valid"], v
    survivor.stop()
    victim.stop()


def test_a_session_ended_on_one_replica_refuses_on_another(three: List[LiveServer]) -> None:
    a, b, _ = three
    sid = session_on(a)
    resolve_on(b, sid, "look up a ticket")  # B holds it now too
    with a.client() as c:
        assert c.delete(f"/v1/sessions/{sid}").status_code == 204
    with b.client() as c:
        r = c.post("/v1/resolve", json=resolve_body(sid, "look up a ticket"))
        assert r.status_code == 410, r.text
        assert r.json()["error"]["code"] == "SESSION_ENDED"
        assert c.get(f"/v1/sessions/{sid}").json()["status"] == "ended"
    with a.client() as c:
        events = c.get(f"/v1/traces/{sid}").json()
        assert events[-1]["event_type"] == "session.ended"


def test_every_replica_lists_every_session_of_the_caller(three: List[LiveServer]) -> None:
    a, b, c = three
    mine = {session_on(a), session_on(b)}
    with c.client(KEY_B) as other:
        other_sid = other.post("/v1/sessions", json={"agent_id": "x", "goal": "g"}).json()[
            "session_id"
        ]
    with c.client() as client:
        listed = {s["session_id"] for s in client.get("/v1/sessions").json()["sessions"]}
        assert listed == mine
    with a.client(KEY_APPROVER) as approver:
        body = approver.get("/v1/sessions", params={"status": "active"}).json()
        assert {s["session_id"] for s in body["sessions"]} == mine | {other_sid}
        assert body["total"] == 3


def test_atlases_cannot_be_changed_on_one_replica(three: List[LiveServer]) -> None:
    a = three[0]
    with a.client(KEY_ADMIN) as admin:
        manifest = admin.get("/v1/atlases/test.replicas").json()
        for r in (
            admin.put("/v1/atlases/test.replicas", json=manifest),
            admin.post("/v1/atlases", json={**manifest, "atlas_id": "test.other"}),
            admin.delete("/v1/atlases/test.replicas"),
        ):
            assert r.status_code == 409, r.text
            assert r.json()["error"]["code"] == "ATLASES_SHARED"
        assert [x["atlas_id"] for x in admin.get("/v1/atlases").json()["atlases"]] == [
            "test.replicas"
        ]


def test_an_id_claimed_on_one_replica_cannot_be_created_on_another(
    tmp_path: Path, pg_dsn: str
) -> None:
    """Without keys a caller may choose a session id; the store claims it
    before the session exists, so a second replica refuses it at once."""
    from cra.storage import PostgresStore

    a, b = start_open(tmp_path, pg_dsn, 2)
    try:
        sid = "01a25000-0000-7000-8000-000000000001"
        with a.client(None) as c:
            r = c.post("/v1/sessions", json={"agent_id": "x", "goal": "g", "session_id": sid})
            assert r.status_code == 201, r.text
        with b.client(None) as c:
            r = c.post("/v1/sessions", json={"agent_id": "y", "goal": "g", "session_id": sid})
            assert r.status_code == 409, r.text
        other = "01a25000-0000-7000-8000-000000000002"
        assert PostgresStore(pg_dsn).claim_owner(other, "")  # a replica mid-creation
        with b.client(None) as c:
            r = c.post("/v1/sessions", json={"agent_id": "y", "goal": "g", "session_id": other})
            assert r.status_code == 409, r.text
    finally:
        a.stop()
        b.stop()
