"""PostgreSQL store benchmarks (issue 17), against a server this module
starts in a temporary directory (`tests/pg_server.py`; skipped, saying why,
when PostgreSQL cannot run here).

Run: `.venv/bin/python -m pytest benches/bench_postgres.py -q`
(`CRA_BENCH_QUICK=1`: a smoke run; its figures are not measurements).

* `bench_pg_write_batch`: `PostgresStore.write_batch` alone with batches of
  BATCH sealed events of one session (one transaction and one `COPY` each),
  as the flush thread writes them. Goal: at least 100,000 events/s.
* `bench_pg_ingest_end_to_end`: a runtime whose sink is the store; SESSIONS
  sessions record events in turn, from the first `record()` until `flush()`
  returns with every event committed (sealing, re-checking each chain's
  head under its row lock, `COPY`, the sessions' rows).

The server runs with `fsync=off` (`-F`, the test server's setting): the
figures are the store's own cost, not the disk's; a production server
with `fsync=on` adds one WAL flush per batch.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from itertools import repeat
from pathlib import Path
from typing import Any

import cra
import pytest
from conftest import EVENT_TYPE, PAYLOAD, QUICK, Report
from storage_helpers import AGENT, BATCH, ROUNDS, median

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from cra.storage import PostgresStore
from pg_server import PgServer, PgServerError, pg_unavailable_reason

SECTION = "PostgreSQL store (issue 17)"
INGEST_EVENTS = 3 * BATCH if QUICK else 200_000
SESSIONS = 100
GOAL = ">= 100,000 events/s"


@pytest.fixture(scope="module")
def server() -> Iterator[PgServer]:
    reason = pg_unavailable_reason()
    if reason:
        pytest.skip(f"PostgreSQL unavailable: {reason}")
    pg = PgServer()
    try:
        pg.start()
    except PgServerError as e:
        pytest.skip(f"PostgreSQL unavailable: {e}")
    yield pg
    pg.stop()


@pytest.fixture(scope="module")
def sealed() -> Iterator[list[cra.TRACEEvent]]:
    rt = cra.Runtime(memory_limit=INGEST_EVENTS + 10_000)
    sid = rt.create_session(agent_id=AGENT, goal="benchmark")
    for _ in repeat(None, INGEST_EVENTS - 1):
        rt.record(sid, EVENT_TYPE, PAYLOAD)
    assert rt.flush(timeout=120)
    events = rt.events(sid)
    rt.close()
    yield events


def bench_pg_write_batch(
    benchmark: Any, report: Report, server: PgServer, sealed: list[cra.TRACEEvent]
) -> None:
    batches = [sealed[i : i + BATCH] for i in range(0, len(sealed), BATCH)]
    walls: list[float] = []
    rounds = iter(range(ROUNDS))

    def one_round() -> None:
        store = PostgresStore(server.new_database(f"ingest{next(rounds)}"))
        try:
            t0 = time.perf_counter()
            for b in batches:
                store.write_batch(b)
            walls.append(time.perf_counter() - t0)
            row = store.session(sealed[0].session_id)
            assert row["event_count"] == len(sealed)
        finally:
            store.close()

    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    rate = len(sealed) / median(walls)
    report.add(SECTION, f"write_batch x{BATCH}", rate, "events/s", GOAL)
    benchmark.extra_info.update(events=len(sealed), write_s=walls, events_per_s=rate)


def bench_pg_ingest_end_to_end(benchmark: Any, report: Report, server: PgServer) -> None:
    walls: list[float] = []
    rounds = iter(range(ROUNDS))

    def one_round() -> None:
        store = PostgresStore(server.new_database(f"e2e{next(rounds)}"))
        rt = cra.Runtime(sinks=[store], memory_limit=INGEST_EVENTS + 10_000)
        try:
            sids = [rt.create_session(AGENT, f"s{i}") for i in range(SESSIONS)]
            record = rt.record
            t0 = time.perf_counter()
            for i in range(INGEST_EVENTS - SESSIONS):
                record(sids[i % SESSIONS], EVENT_TYPE, PAYLOAD)
            assert rt.flush(timeout=300)
            walls.append(time.perf_counter() - t0)
            assert store.verify(sids[0]).valid
        finally:
            rt.close()
            store.close()

    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    rate = (INGEST_EVENTS - SESSIONS) / median(walls)
    report.add(SECTION, f"record() to committed, {SESSIONS} sessions", rate, "events/s", GOAL)
    benchmark.extra_info.update(events=INGEST_EVENTS - SESSIONS, wall_s=walls, events_per_s=rate)
