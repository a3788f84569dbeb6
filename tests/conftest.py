"""Shared fixtures and helpers of the test suite.

The reference helpers here (reference_hash, rehash_from, chain_is_linked,
read_jsonl, ...) are independent of cra: they hash and read events with
hashlib, blake3 and json only. The fixtures are the runtimes, harnesses,
stores and servers that more than one test module uses.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import blake3
import cra
import pytest
from audit_helpers import STORE_KINDS, Recording, StoreOpener
from execute_helpers import Harness
from pg_server import PgServer, PgServerError, pg_unavailable_reason
from pg_server import unavailable as pg_unavailable

if TYPE_CHECKING:
    import httpx
    from server_helpers import LiveServer, TestClient

SPECS = Path(__file__).resolve().parent.parent / "specs"
ZEROS = "0" * 64


def wait_for_child(pid: int, seconds: float = 60) -> None:
    """Waits for a forked child and checks it exited with status 0 (killed
    and failed if it has not finished within `seconds`)."""
    deadline = time.monotonic() + seconds
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung")
        time.sleep(0.02)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


@pytest.fixture
def runtime() -> Iterator[cra.Runtime]:
    """An in-memory runtime, closed after the test."""
    rt = cra.Runtime()
    yield rt
    rt.close(timeout=10)


def load_vectors(name: str) -> dict[str, Any]:
    with open(SPECS / "vectors" / name, encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def reference_canonical(value: Any) -> str:
    """What the protocol says canonical JSON is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def reference_hash(event: dict[str, Any], algorithm: str = "sha256") -> str:
    """TRACE/1.0 event hash of an event dict, computed without cra."""
    parts = [
        event["trace_version"],
        event["event_id"],
        event["trace_id"],
        event["span_id"],
        event["parent_span_id"] or "",
        event["session_id"],
        str(event["sequence"]),
        event["timestamp"],
        event["event_type"],
        reference_canonical(event["payload"]),
        event["previous_event_hash"],
    ]
    data = "".join(parts).encode("utf-8", "surrogatepass")
    if algorithm == "sha256":
        return hashlib.sha256(data).hexdigest()
    if algorithm == "blake3":
        return blake3.blake3(data).hexdigest()
    raise ValueError(algorithm)


def rehash_from(events: list[dict[str, Any]], start: int, algorithm: str = "sha256") -> None:
    """Relinks and rehashes `events[start:]` so only a deliberate fault remains."""
    prev = events[start - 1]["event_hash"] if start else ZEROS
    for e in events[start:]:
        e["previous_event_hash"] = prev
        e["event_hash"] = prev = reference_hash(e, algorithm)


def chain_is_linked(events: list[dict[str, Any]], first_sequence: int, anchor: str) -> None:
    """`events` are linked from `anchor` and hash as the protocol says."""
    prev = anchor
    for i, e in enumerate(events):
        assert e["sequence"] == first_sequence + i
        assert e["previous_event_hash"] == prev
        assert e["event_hash"] == reference_hash(e)
        prev = e["event_hash"]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_jsonl(path: Path, events: list[dict[str, Any]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(json.dumps(e) + "\n" for e in events)
    return path


class ListSink:
    """A Python sink that keeps every batch it is given."""

    def __init__(self) -> None:
        self.events: list[cra.TRACEEvent] = []
        self.batches = 0
        self._lock = threading.Lock()

    def write_batch(self, events: list[cra.TRACEEvent]) -> None:
        with self._lock:
            self.events.extend(events)
            self.batches += 1


class GatedSink(ListSink):
    """A Python sink whose `write_batch` waits until `gate` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.entered = threading.Event()

    def write_batch(self, events: list[cra.TRACEEvent]) -> None:
        self.entered.set()
        self.gate.wait()
        super().write_batch(events)


@pytest.fixture
def rt() -> Iterator[cra.Runtime]:
    """An in-memory runtime, closed after the test (the resolver tests' name)."""
    runtime = cra.Runtime()
    yield runtime
    runtime.close(timeout=10)


@pytest.fixture(params=STORE_KINDS)
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreOpener]:
    o = StoreOpener(request.param, tmp_path)
    o.open()
    yield o
    o.close()


@pytest.fixture
def rec(opener: StoreOpener) -> Iterator[Recording]:
    r = Recording(opener)
    yield r
    if not r.rt.closed:
        r.close()


@pytest.fixture
def h() -> Iterator[Harness]:
    """A Harness with one resolution made (the execute tests' runtime)."""
    with Harness() as harness:
        harness.resolve()
        yield harness


# The server fixtures import server_helpers (FastAPI, httpx) only when a server test asks.


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server for the module's live tests, with two agent keys (A and B),
    an approver key and an admin key (`server_helpers.LIVE_KEYS`)."""
    from server_helpers import LIVE_KEYS, LiveServer

    server = LiveServer(tmp_path_factory.mktemp("live"), keys=LIVE_KEYS)
    yield server
    server.stop()


@pytest.fixture
def a(live: LiveServer) -> Iterator[httpx.Client]:
    """A client of `live` with the first API key."""
    from server_helpers import KEY_A

    with live.client(KEY_A) as c:
        yield c


@pytest.fixture
def b(live: LiveServer) -> Iterator[httpx.Client]:
    """A client of `live` with the second agent key."""
    from server_helpers import KEY_B

    with live.client(KEY_B) as c:
        yield c


@pytest.fixture
def approver(live: LiveServer) -> Iterator[httpx.Client]:
    """A client of `live` with the approver key (named `lead`)."""
    from server_helpers import KEY_APPROVER

    with live.client(KEY_APPROVER) as c:
        yield c


@pytest.fixture
def admin(live: LiveServer) -> Iterator[httpx.Client]:
    """A client of `live` with the admin key (named `ops`)."""
    from server_helpers import KEY_ADMIN

    with live.client(KEY_ADMIN) as c:
        yield c


@pytest.fixture
def local(tmp_path: Path) -> Iterator[TestClient]:
    """An in-process client of an app without keys."""
    from server_helpers import TestClient, make_app

    with TestClient(make_app(tmp_path), raise_server_exceptions=False) as c:
        yield c


# PostgreSQL: one throwaway server for the whole run (pg_server.PgServer),
# started only when a test asks for it; a fresh database per test. Without
# PostgreSQL the tests that need it are skipped with the reason, or fail
# when CRA_REQUIRE_POSTGRES=1.

_pg_db_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One PostgreSQL server for the session (`PgServer`: `dsn`, `new_database`,
    `psql`), stopped and removed at the end."""
    reason = pg_unavailable_reason()
    if reason is not None:
        pg_unavailable(reason)
    server = PgServer()
    try:
        server.start()
    except PgServerError as e:
        pg_unavailable(f"the server did not start: {e}")
    yield server
    server.stop()


@pytest.fixture
def pg_dsn(pg_server: PgServer) -> str:
    """The DSN of a database of its own for this test
    (postgresql://postgres@127.0.0.1:<port>/t<n>)."""
    return pg_server.new_database(f"t{next(_pg_db_numbers)}")
