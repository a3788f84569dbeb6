"""End-to-end trace writing benchmarks (issue 5): a runtime records N
events back to back into a store or its trace file, then flush().

Run: `.venv/bin/python -m pytest benches/bench_store_end_to_end.py -q`

* `bench_sqlite_end_to_end`: `cra.Runtime(sinks=[SQLiteStore])` records N
  events back to back, then `flush()`: N / (time from the first record to
  the return of flush()). The flush thread seals and calls the store; its
  own CPU time per event is reported too.
* `bench_jsonl_core_sink`: the core's file sink, `cra.Runtime(trace_file=)`,
  the same way: rate until every event is written to the file (page cache),
  and until `flush()` returns (fsync included).
"""

from __future__ import annotations

import os
import time
from itertools import repeat
from pathlib import Path
from typing import Any

import cra
from conftest import EVENT_TYPE, PAYLOAD, QUICK, Report, thread_cpu_ns
from storage_helpers import (
    AGENT,
    ROUNDS,
    SQLITE_GOAL,
    TAG,
    SQLiteStore,
    cpu_delta,
    flush_thread_of,
    median,
)

#: Events recorded by the end-to-end SQLite bench (per round).
E2E_EVENTS = 10_000 if QUICK else 200_000
#: Events recorded by the core JSONL sink bench (per round).
JSONL_EVENTS = 20_000 if QUICK else 500_000
JSONL_GOAL = ">= 500,000"


def bench_sqlite_end_to_end(benchmark: Any, report: Report, tmp_path: Path) -> None:
    """cra.Runtime(sinks=[SQLiteStore]): record N events, then flush()."""
    n = E2E_EVENTS
    results: list[tuple[float, float, int | None, float]] = []

    def one_round(i: int) -> None:
        store = SQLiteStore(tmp_path / f"e2e-{i}.db")
        rt, tid = flush_thread_of(lambda: cra.Runtime(sinks=[store], memory_limit=n + 10_000))
        try:
            sid = rt.create_session(agent_id=AGENT, goal="benchmark")
            assert rt.flush(timeout=10)
            record = rt.record
            cpu0 = thread_cpu_ns(tid)
            t0 = time.perf_counter_ns()
            for _ in repeat(None, n - 1):
                record(sid, EVENT_TYPE, PAYLOAD)
            t1 = time.perf_counter_ns()
            assert rt.flush(timeout=600)
            t2 = time.perf_counter_ns()
            cpu = cpu_delta(tid, cpu0)
            stats = rt.stats()
            assert stats["sink_errors"] == 0 and stats["dropped"] == 0
            assert store.session(sid)["event_count"] == n
        finally:
            rt.close()
            store.close()
        results.append(((t1 - t0) / 1e9, (t2 - t0) / 1e9, cpu, os.getloadavg()[0]))

    rounds = iter(range(ROUNDS))
    benchmark.pedantic(lambda: one_round(next(rounds)), rounds=ROUNDS, iterations=1)
    section = "SQLite ingest, end to end (Runtime(sinks=[SQLiteStore]))" + TAG
    rate = (n - 1) / median([r[1] for r in results])
    report.add(section, f"record {n // 1000}k..flush()", rate, "events/s", SQLITE_GOAL)
    report.add(section, "record loop alone", (n - 1) / median([r[0] for r in results]), "events/s")
    cpus = [r[2] for r in results if r[2]]
    if cpus:
        report.add(
            section, "flush thread, per CPU-second", (n - 1) / (median(cpus) / 1e9), "events/s"
        )
        report.add(section, "flush thread CPU per event", median(cpus) / (n - 1), "ns")
    benchmark.extra_info.update(events=n, rounds=results, events_per_s=rate)


def bench_jsonl_core_sink(benchmark: Any, report: Report, tmp_path: Path) -> None:
    """cra.Runtime(trace_file=...): record N events, then flush() (fsync)."""
    n = JSONL_EVENTS
    results: list[tuple[float, float, float, int | None, int, float]] = []

    def one_round(i: int) -> None:
        path = tmp_path / f"core-{i}.trace.jsonl"
        rt, tid = flush_thread_of(lambda: cra.Runtime(trace_file=path, memory_limit=n + 10_000))
        try:
            sid = rt.create_session(agent_id=AGENT, goal="benchmark")
            assert rt.flush(timeout=10)
            base = rt.stats()["written"]
            record = rt.record
            stats = rt.stats
            cpu0 = thread_cpu_ns(tid)
            t0 = time.perf_counter_ns()
            for _ in repeat(None, n - 1):
                record(sid, EVENT_TYPE, PAYLOAD)
            t1 = time.perf_counter_ns()
            while stats()["written"] < base + n - 1:  # written to the file (page cache)
                time.sleep(0.0002)
            t2 = time.perf_counter_ns()
            cpu = cpu_delta(tid, cpu0)
            assert rt.flush(timeout=600)  # and synced
            t3 = time.perf_counter_ns()
            assert rt.stats()["sink_errors"] == 0
            size = path.stat().st_size
        finally:
            rt.close()
        path.unlink()
        results.append(
            ((t1 - t0) / 1e9, (t2 - t0) / 1e9, (t3 - t0) / 1e9, cpu, size, os.getloadavg()[0])
        )

    rounds = iter(range(ROUNDS))
    benchmark.pedantic(lambda: one_round(next(rounds)), rounds=ROUNDS, iterations=1)
    section = "JSONL write, core file sink (Runtime(trace_file=))"
    written = (n - 1) / median([r[1] for r in results])
    durable = (n - 1) / median([r[2] for r in results])
    report.add(section, f"record {n // 1000}k..written", written, "events/s", JSONL_GOAL)
    report.add(section, "record..flush() (fsync incl.)", durable, "events/s")
    cpus = [r[3] for r in results if r[3]]
    if cpus:
        report.add(
            section, "flush thread, per CPU-second", (n - 1) / (median(cpus) / 1e9), "events/s"
        )
        report.add(section, "flush thread CPU per event", median(cpus) / (n - 1), "ns")
    size = results[-1][4]
    report.add(section, "bytes per event", size / n, "B")
    report.add(section, "written, MB/s", size / 1e6 / median([r[1] for r in results]), "MB/s")
    benchmark.extra_info.update(events=n, rounds=results, events_per_s=written)
