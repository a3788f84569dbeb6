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
* `bench_sqlite_floor`: the same rows inserted alone through the store's
  connection, without its bookkeeping (a floor for a Python writer only).
* `bench_sqlite_growing_file`: whether the cost per event grows with the
  file. GROW_SESSIONS sessions record events of about 1 KB (the size of
  the HTTP server's resolution events) in turn, GROW_CHUNK at a time; the
  batches the flush thread hands a capturing sink are then written to one
  SQLiteStore (timed, write_batch only), until GROW_EVENTS are in the
  file. Reported: the rate over the whole run, the cost per event in each
  fifth of it, and the last fifth over the first. One round.
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
#: The growing-file bench: events in the file at the end, sessions, events
#: recorded (then written) at a time, and the payload that makes an event's
#: JSON about 1 KB.
GROW_EVENTS = 20_000 if QUICK else 500_000
GROW_SESSIONS = 100
GROW_CHUNK = 10_000 if QUICK else 50_000
GROW_PAYLOAD = {"k": 1, "text": "x" * 440}


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


#: The floor's statement for a store of the native writer's era (schema
#: version 2: the session as its key in session_keys, the first one being 1).
_FLOOR_INSERT = "INSERT INTO events (session, sequence, event_type, event) VALUES (?, ?, ?, ?)"


def _floor_batches(
    events: list[cra.TRACEEvent],
) -> tuple[list[Any], Callable[[Any, Any], None]]:
    """The measured storage module's rows for the events in batches of BATCH
    (built here, not timed) and how it inserts one batch into its events
    table in one transaction, the way its writer does: through the core's
    connection (`_core.SQLiteDatabase`) for a store written by the core;
    `_insert_events` of a Python writer from before; executemany of
    (session_id, sequence, event_type, timestamp, event) tuples for a
    module from before `_insert_events`."""
    spans = range(0, len(events), BATCH)
    if hasattr(SQLiteStore, "_native_sink"):
        rows = [(1, e.sequence, e.event_type, e.to_json()) for e in events]

        def insert_native(store: Any, batch: Any) -> None:
            if not store._db.query("SELECT 1 FROM session_keys"):
                store._db.query(
                    "INSERT INTO session_keys (session_id) VALUES (?)", (events[0].session_id,)
                )
            store._db.transaction([(_FLOOR_INSERT, r) for r in batch])

        return [rows[i : i + BATCH] for i in spans], insert_native
    if hasattr(SQLiteStore, "_insert_events"):
        # The package's scan, or `_scan` of a single-file module from before.
        scan = getattr(STORAGE, "_scan", None) or STORAGE.common.scan
        rows, sources = scan(events)

        def insert_python(store: Any, batch: Any) -> None:
            store._db.execute("BEGIN")
            store._insert_events(*batch)
            store._db.execute("COMMIT")

        return [(rows[i : i + BATCH], sources[i : i + BATCH]) for i in spans], insert_python
    tuples = [(e.session_id, e.sequence, e.event_type, e.timestamp, e.to_json()) for e in events]

    def insert_v0(store: Any, batch: Any) -> None:
        store._db.execute("BEGIN")
        store._db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?)", batch)
        store._db.execute("COMMIT")

    return [tuples[i : i + BATCH] for i in spans], insert_v0


def bench_sqlite_floor(benchmark: Any, report: Report, sealed: Any, tmp_path: Path) -> None:
    """The SQLite part of write_batch alone: the store's rows for the same
    events, built beforehand, inserted the way the store inserts them
    (statements, pragmas and schema of a new SQLiteStore), one transaction
    per batch of BATCH, without the store's session bookkeeping. For a
    Python writer, what no change to the rest of it could beat; for the
    core's writer it is no floor (each row crosses from Python as a tuple,
    one statement each), only the same SQLite work driven from Python."""
    _, events = sealed
    chunks, insert = _floor_batches(events)
    n = len(events)
    walls: list[float] = []
    cpus: list[float] = []

    def one_round(i: int) -> None:
        store = SQLiteStore(tmp_path / f"floor-{i}.db")
        try:
            c0 = time.thread_time_ns()
            t0 = time.perf_counter_ns()
            for chunk in chunks:
                insert(store, chunk)
            t1 = time.perf_counter_ns()
            c1 = time.thread_time_ns()
            if hasattr(store._db, "query"):
                (count,) = store._db.query("SELECT count(*) FROM events")[0]
            else:
                count = store._db.execute("SELECT count(*) FROM events").fetchone()[0]
            assert count == n
        finally:
            store.close()
        walls.append((t1 - t0) / 1e9)
        cpus.append((c1 - c0) / 1e9)

    rounds = iter(range(ROUNDS))
    benchmark.pedantic(lambda: one_round(next(rounds)), rounds=ROUNDS, iterations=1)
    section = "SQLite ingest (SQLiteStore.write_batch)" + TAG
    report.add(section, "same rows, inserts alone (floor)", n / median(walls), "events/s")
    report.add(section, "inserts alone, per CPU-second", n / median(cpus), "events/s")
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


# -- SQLite, a growing file ------------------------------------------------------


class _Capture:
    """A sink that keeps the batches the flush thread hands it."""

    def __init__(self) -> None:
        self.batches: list[list[cra.TRACEEvent]] = []

    def write_batch(self, events: list[cra.TRACEEvent]) -> None:
        self.batches.append(events)


def bench_sqlite_growing_file(benchmark: Any, report: Report, tmp_path: Path) -> None:
    """SQLiteStore.write_batch of interleaved sessions' ~1 KB events while
    the file grows to GROW_EVENTS events."""
    per_batch: list[tuple[int, int]] = []  # (events, ns), in the order written
    sizes: dict[str, Any] = {}

    def one_round() -> None:
        capture = _Capture()
        store = SQLiteStore(tmp_path / "grow.db")
        rt = cra.Runtime(sinks=[capture], memory_limit=10_000)
        try:
            sids = [
                rt.create_session(agent_id=AGENT, goal="benchmark") for _ in range(GROW_SESSIONS)
            ]
            record = rt.record
            written = 0
            while written < GROW_EVENTS:
                for i in range(min(GROW_CHUNK, GROW_EVENTS - written) - len(sids) * (written == 0)):
                    record(sids[i % GROW_SESSIONS], EVENT_TYPE, GROW_PAYLOAD)
                assert rt.flush(timeout=600)
                batches, capture.batches = capture.batches, []
                write = store.write_batch
                for batch in batches:
                    t0 = time.perf_counter_ns()
                    write(batch)
                    per_batch.append((len(batch), time.perf_counter_ns() - t0))
                    written += len(batch)
            t0 = time.perf_counter_ns()
            store.flush()
            sizes["flush_ns"] = time.perf_counter_ns() - t0
            sizes["event_bytes"] = len(batches[-1][-1].to_json())
            assert sum(store.session(sid)["event_count"] for sid in sids) == written
        finally:
            rt.close()
            store.close()
        sizes["file"] = (tmp_path / "grow.db").stat().st_size
        sizes["events"] = written
        sizes["load1"] = os.getloadavg()[0]

    benchmark.pedantic(one_round, rounds=1, iterations=1)
    section = (
        f"SQLite ingest, growing file ({GROW_SESSIONS} sessions interleaved, "
        f"~{sizes['event_bytes']} B events){TAG}"
    )
    n = sizes["events"]
    report.add(
        section, f"write_batch, {n:,} events", n / (sum(t for _, t in per_batch) / 1e9), "events/s"
    )
    # Cost per event in each fifth of the run, by the events written so far.
    fifths: list[float] = []
    bounds = [n * (i + 1) / 5 for i in range(5)]
    seen = events = ns = 0
    for count, t in per_batch:
        seen += count
        events += count
        ns += t
        if len(fifths) < 5 and seen >= bounds[len(fifths)]:
            fifths.append(ns / events)
            events = ns = 0
    for i, cost in enumerate(fifths):
        report.add(section, f"per event, fifth {i + 1} of the file", cost, "ns")
    report.add(section, "last fifth / first fifth", fifths[-1] / fifths[0], "x")
    report.add(section, "flush() at the end", sizes["flush_ns"] / 1e6, "ms")
    report.add(section, "file size", sizes["file"] / 1e6, "MB")
    benchmark.extra_info.update(sizes=sizes, fifths_ns=fifths, batches=len(per_batch))
