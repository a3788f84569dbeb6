"""SIGTERM to a `cra serve` process under load flushes every trace."""

from __future__ import annotations

import re
import signal
import threading
import time
from pathlib import Path

import httpx
from cra.storage import SQLiteStore
from server_helpers import (
    KEY_A,
    KEY_B,
    LiveServer,
    assert_error,
    execute_body,
    resolve_body,
)


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
            assert_error(c.post("/v1/sessions", json=dup), 400, "SESSION_ID_NOT_ALLOWED")
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
