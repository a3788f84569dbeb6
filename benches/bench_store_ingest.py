"""Store ingest benchmarks (issue 5): a store's `write_batch` alone.

Run: `.venv/bin/python -m pytest benches/bench_store_ingest.py -q`
(`CRA_BENCH_QUICK=1` for a smoke run of a few seconds; its figures are not
measurements).

* `bench_sqlite_write_batch`, `bench_jsonlstore_write_batch`: a store's
  `write_batch` alone, called from this thread with batches of BATCH
  `TRACEEvent` objects (the flush thread's largest batch), sealed by a real
  runtime beforehand. The store's `flush()` (WAL checkpoint, fsync) is timed
  separately. "per CPU-second" divides by this thread's CPU time, which
  holds up better than wall time on a shared machine.
* `bench_sqlite_floor`: the same rows inserted with sqlite3 alone.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from itertools import repeat
from pathlib import Path
from typing import Any

import cra
import pytest
from conftest import EVENT_TYPE, PAYLOAD, QUICK, Report
from storage_helpers import (
    AGENT,
    BATCH,
    ROUNDS,
    SQLITE_GOAL,
    STORAGE,
    TAG,
    JSONLStore,
    SQLiteStore,
    median,
)

#: Events written by the write_batch benches (per round).
INGEST_EVENTS = 3 * BATCH if QUICK else 200_000


# -- sealed events from a real runtime -------------------------------------


@pytest.fixture(scope="module")
def sealed() -> Iterator[tuple[str, list[cra.TRACEEvent]]]:
    """INGEST_EVENTS sealed events of one session (session.started first),
    as the flush thread hands them to a sink."""
    rt = cra.Runtime(memory_limit=INGEST_EVENTS + 10_000)
    sid = rt.create_session(agent_id=AGENT, goal="benchmark")
    record = rt.record
    for _ in repeat(None, INGEST_EVENTS - 1):
        record(sid, EVENT_TYPE, PAYLOAD)
    assert rt.flush(timeout=120)
    events = rt.events(sid)
    rt.close()
    assert len(events) == INGEST_EVENTS
    yield sid, events


def _batches(events: list[cra.TRACEEvent]) -> list[list[cra.TRACEEvent]]:
    return [events[i : i + BATCH] for i in range(0, len(events), BATCH)]


def _write_batches(
    benchmark: Any,
    report: Report,
    section: str,
    make_store: Callable[[int], Any],
    sealed: tuple[str, list[cra.TRACEEvent]],
    goal: str,
) -> None:
    """Rounds of: a fresh store, every batch through write_batch (timed,
    wall and this thread's CPU), then the store's flush() (timed apart)."""
    sid, events = sealed
    batches = _batches(events)
    n = len(events)
    walls: list[float] = []
    cpus: list[float] = []
    flushes: list[float] = []
    loads: list[float] = []

    def one_round(i: int) -> None:
        store = make_store(i)
        try:
            write = store.write_batch
            c0 = time.thread_time_ns()
            t0 = time.perf_counter_ns()
            for batch in batches:
                write(batch)
            t1 = time.perf_counter_ns()
            c1 = time.thread_time_ns()
            store.flush()
            t2 = time.perf_counter_ns()
            assert store.session(sid)["event_count"] == n
            assert store.session(sid)["last_sequence"] == n - 1
        finally:
            store.close()
        walls.append((t1 - t0) / 1e9)
        cpus.append((c1 - c0) / 1e9)
        flushes.append((t2 - t1) / 1e9)
        loads.append(os.getloadavg()[0])

    rounds = iter(range(ROUNDS))
    benchmark.pedantic(lambda: one_round(next(rounds)), rounds=ROUNDS, iterations=1)
    rate = n / median(walls)
    report.add(section, f"write_batch x{BATCH}", rate, "events/s", goal)
    report.add(section, "write_batch, per CPU-second", n / median(cpus), "events/s")
    report.add(section, "write_batch per event", median(walls) / n * 1e9, "ns")
    report.add(section, "flush() after the batches", median(flushes) * 1e3, "ms")
    report.add(
        section, "incl. flush()", n / median([w + f for w, f in zip(walls, flushes)]), "events/s"
    )
    benchmark.extra_info.update(
        events=n,
        batch=BATCH,
        write_s=walls,
        cpu_s=cpus,
        flush_s=flushes,
        load1=loads,
        events_per_s=rate,
    )


# -- SQLite ------------------------------------------------------------------


def bench_sqlite_write_batch(benchmark: Any, report: Report, sealed: Any, tmp_path: Path) -> None:
    """SQLiteStore.write_batch with batches of BATCH sealed events."""
    _write_batches(
        benchmark,
        report,
        "SQLite ingest (SQLiteStore.write_batch)" + TAG,
        lambda i: SQLiteStore(tmp_path / f"ingest-{i}.db"),
        sealed,
        SQLITE_GOAL,
    )


def _floor_batches(
    events: list[cra.TRACEEvent],
) -> tuple[list[Any], Callable[[Any, Any], None]]:
    """The measured storage module's rows for the events in batches of BATCH
    (built here, not timed) and how it inserts one batch into its events
    table within a transaction. A module from before `_insert_events`
    inserted (session_id, sequence, event_type, timestamp, event) tuples
    with executemany."""
    if hasattr(SQLiteStore, "_insert_events"):
        rows, sources = STORAGE._scan(events)
        spans = range(0, len(rows), BATCH)
        return [(rows[i : i + BATCH], sources[i : i + BATCH]) for i in spans], (
            lambda store, batch: store._insert_events(*batch)
        )
    rows = [(e.session_id, e.sequence, e.event_type, e.timestamp, e.to_json()) for e in events]

    def insert(store: Any, batch: Any) -> None:
        store._db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?)", batch)

    return [rows[i : i + BATCH] for i in range(0, len(rows), BATCH)], insert


def bench_sqlite_floor(benchmark: Any, report: Report, sealed: Any, tmp_path: Path) -> None:
    """The SQLite part of write_batch alone: the store's rows for the same
    events, built beforehand, inserted the way the store inserts them
    (statements, pragmas and schema of a new SQLiteStore), one transaction
    per batch of BATCH, without the store's session bookkeeping. What no
    change to the rest of the Python side can beat."""
    _, events = sealed
    chunks, insert = _floor_batches(events)
    n = len(events)
    walls: list[float] = []
    cpus: list[float] = []

    def one_round(i: int) -> None:
        store = SQLiteStore(tmp_path / f"floor-{i}.db")
        db = store._db
        try:
            c0 = time.thread_time_ns()
            t0 = time.perf_counter_ns()
            for chunk in chunks:
                db.execute("BEGIN")
                insert(store, chunk)
                db.execute("COMMIT")
            t1 = time.perf_counter_ns()
            c1 = time.thread_time_ns()
            assert db.execute("SELECT count(*) FROM events").fetchone()[0] == n
        finally:
            store.close()
        walls.append((t1 - t0) / 1e9)
        cpus.append((c1 - c0) / 1e9)

    rounds = iter(range(ROUNDS))
    benchmark.pedantic(lambda: one_round(next(rounds)), rounds=ROUNDS, iterations=1)
    section = "SQLite ingest (SQLiteStore.write_batch)" + TAG
    report.add(section, "sqlite3 alone, same rows (floor)", n / median(walls), "events/s")
    report.add(section, "sqlite3 alone, per CPU-second", n / median(cpus), "events/s")
    benchmark.extra_info.update(events=n, write_s=walls, cpu_s=cpus)


# -- JSONL -------------------------------------------------------------------


def bench_jsonlstore_write_batch(
    benchmark: Any, report: Report, sealed: Any, tmp_path: Path
) -> None:
    """JSONLStore.write_batch with batches of BATCH sealed events."""
    _write_batches(
        benchmark,
        report,
        "JSONL write (JSONLStore.write_batch)" + TAG,
        lambda i: JSONLStore(tmp_path / f"jsonl-{i}"),
        sealed,
        "",
    )
