"""Acknowledged means kept, against a real `cra serve` process: an answer is
sent only after the request's events are committed, so `kill -9` under load
loses nothing that was answered; a store that cannot write (a file size
limit on the process stands in for a full disk) turns traced requests into
503 `TRACE_UNAVAILABLE` with Retry-After, health into 503 `degraded`, and
writing resumes, with nothing acknowledged lost, once it can write again.
"""

from __future__ import annotations

import json
import resource
import signal
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Set

import httpx
import pytest
from cra.storage import SQLiteStore
from server_helpers import (
    KEY_A,
    LIVE_KEYS,
    LiveServer,
    assert_error,
    execute_body,
    resolve_body,
)

pytestmark = pytest.mark.skipif(
    not hasattr(resource, "prlimit"), reason="needs Linux prlimit to limit the server's file size"
)


class Acked:
    """What the server acknowledged (200) to the load threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.resolves: Set[str] = set()  # request ids
        self.executions: Set[str] = set()  # execution ids
        self.sessions: Set[str] = set()
        self.refused = 0


def _load(server: LiveServer, acked: Acked, stop: threading.Event) -> None:
    """A session, then resolve + execute until `stop` or the server dies."""
    try:
        with server.client(KEY_A) as c:
            r = c.post("/v1/sessions", json={"agent_id": "agent-1", "goal": "load"})
            if r.status_code != 201:
                return
            sid = r.json()["session_id"]
            with acked.lock:
                acked.sessions.add(sid)
            while not stop.is_set():
                body = resolve_body(sid)
                r = c.post("/v1/resolve", json=body)
                if r.status_code != 200:
                    with acked.lock:
                        acked.refused += 1
                    continue
                with acked.lock:
                    acked.resolves.add(body["request_id"])
                res = r.json()["resolution_id"]
                r = c.post(
                    "/v1/execute",
                    json=execute_body(sid, res, "ticket.lookup", {"ticket_id": "T-1"}),
                )
                if r.status_code == 200:
                    with acked.lock:
                        acked.executions.add(r.json()["execution_id"])
    except httpx.TransportError:
        return  # the server was killed


def _stored(path: Path, sessions: Set[str]) -> Dict[str, List[Dict[str, Any]]]:
    store = SQLiteStore(path)
    try:
        return {sid: store.events(sid) for sid in sessions}
    finally:
        store.close()


def _kept(events: Dict[str, List[Dict[str, Any]]]) -> tuple[Set[str], Set[str]]:
    resolves: Set[str] = set()
    executions: Set[str] = set()
    for evs in events.values():
        for e in evs:
            p = e["payload"]
            if e["event_type"] == "carp.resolution.completed":
                resolves.add(p["request_id"])
            elif e["event_type"] == "action.executed":
                executions.add(p["execution_id"])
    return resolves, executions


def test_kill_9_under_load_loses_nothing_acknowledged(tmp_path: Path) -> None:
    server = LiveServer(tmp_path / "srv", keys=LIVE_KEYS)
    acked, stop = Acked(), threading.Event()
    threads = [threading.Thread(target=_load, args=(server, acked, stop)) for _ in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while len(acked.executions) < 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()
    stop.set()
    for t in threads:
        t.join(30)
    server.stop()
    assert len(acked.resolves) >= 200 and len(acked.executions) >= 200, server.log()
    events = _stored(server.store, acked.sessions)
    resolves, executions = _kept(events)
    assert acked.resolves <= resolves, (
        f"{len(acked.resolves - resolves)} acknowledged resolves lost"
    )
    assert acked.executions <= executions, (
        f"{len(acked.executions - executions)} acknowledged executes lost"
    )
    # Every chain that was cut by the kill still verifies from its start.
    store = SQLiteStore(server.store)
    try:
        for sid in acked.sessions:
            assert store.verify(sid).valid, sid
    finally:
        store.close()


def _limit_file_size(pid: int, size: int) -> None:
    _, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (size, hard))


def _unlimit_file_size(pid: int) -> None:
    _, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (hard, hard))


def test_a_store_that_cannot_write_answers_503_and_resumes(tmp_path: Path) -> None:
    server = LiveServer(tmp_path / "srv", keys=LIVE_KEYS)
    acked: Set[str] = set()
    try:
        with server.client(KEY_A) as c:
            r = c.post("/v1/sessions", json={"agent_id": "agent-1", "goal": "g"})
            assert r.status_code == 201
            sid = r.json()["session_id"]
            body = resolve_body(sid)
            assert c.post("/v1/resolve", json=body).status_code == 200
            acked.add(body["request_id"])

            _limit_file_size(server.proc.pid, 1)  # no write can extend any file
            body = resolve_body(sid)
            err = assert_error(c.post("/v1/resolve", json=body), 503, "TRACE_UNAVAILABLE")
            assert err["recoverable"] is True
            assert str(tmp_path) not in json.dumps(err)  # no paths in answers
            # Health says why, without the store's error text.
            h = c.get("/v1/health")
            assert h.status_code == 503 and h.json()["status"] == "degraded", h.text
            assert h.json()["reason"] and str(tmp_path) not in h.text
            # Refused up front now, each with Retry-After; none acknowledged.
            for _ in range(5):
                r = c.post("/v1/resolve", json=resolve_body(sid))
                assert_error(r, 503, "TRACE_UNAVAILABLE")
                assert r.headers["Retry-After"] == "1"
            # Many at once: each is refused at once, and the server (its
            # one event loop) keeps answering; nothing waits on the store.
            codes: List[int] = []

            def burst() -> None:
                with server.client(KEY_A) as c2:
                    for _ in range(10):
                        codes.append(c2.post("/v1/resolve", json=resolve_body(sid)).status_code)

            started = time.monotonic()
            burst_threads = [threading.Thread(target=burst) for _ in range(8)]
            for t in burst_threads:
                t.start()
            for t in burst_threads:
                t.join(30)
            assert codes == [503] * 80 and time.monotonic() - started < 10
            r = c.post(
                "/v1/execute", json=execute_body(sid, "0" * 8 + "-0000-4000-8000-" + "0" * 12, "x")
            )
            assert_error(r, 503, "TRACE_UNAVAILABLE")
            r = c.post("/v1/sessions", json={"agent_id": "agent-1", "goal": "g"})
            assert_error(r, 503, "TRACE_UNAVAILABLE")

            _unlimit_file_size(server.proc.pid)  # space returns
            deadline = time.monotonic() + 15
            while c.get("/v1/health").status_code != 200:
                assert time.monotonic() < deadline, server.log()
                time.sleep(0.1)
            for _ in range(3):
                body = resolve_body(sid)
                assert c.post("/v1/resolve", json=body).status_code == 200
                acked.add(body["request_id"])
    finally:
        # SIGTERM: the server flushes what is queued and exits.
        assert server.stop() in (0, -15), server.log()  # uvicorn re-raises SIGTERM
    events = _stored(server.store, {sid})
    resolves, _ = _kept(events)
    assert acked <= resolves
    store = SQLiteStore(server.store)
    try:
        assert store.verify(sid).valid
    finally:
        store.close()
