"""Storage and replay benchmarks (issue 5): SQLite ingest, JSONL write,
replay of a 100,000-event trace, and record() percentiles while an
SQLiteStore ingests.

Run: `.venv/bin/python -m pytest benches/bench_storage.py -q`
(`CRA_BENCH_QUICK=1` for a smoke run of a few seconds; its figures are not
measurements).

What each bench measures:

* `bench_sqlite_write_batch`, `bench_jsonlstore_write_batch`: a store's
  `write_batch` alone, called from this thread with batches of BATCH
  `TRACEEvent` objects (the flush thread's largest batch), sealed by a real
  runtime beforehand. The store's `flush()` (WAL checkpoint, fsync) is timed
  separately. "per CPU-second" divides by this thread's CPU time, which
  holds up better than wall time on a shared machine.
* `bench_sqlite_end_to_end`: `cra.Runtime(sinks=[SQLiteStore])` records N
  events back to back, then `flush()`: N / (time from the first record to
  the return of flush()). The flush thread seals and calls the store; its
  own CPU time per event is reported too.
* `bench_jsonl_core_sink`: the core's file sink, `cra.Runtime(trace_file=)`,
  the same way: rate until every event is written to the file (page cache),
  and until `flush()` returns (fsync included).
* `bench_replay`: `cra.replay(path, [atlas])` of a trace of REPLAY_EVENTS
  events recorded by a real session (resolves and executions against a copy
  of the example support atlas whose rate limit and budget are raised so
  that executions succeed). Each round runs in a fresh interpreter. Memory:
  growth of the peak resident set (`VmHWM` of /proc/self/status, reset
  through /proc/self/clear_refs just before replay, minus `VmRSS` then; it
  includes the Rust core's allocations) and, in a second replay in the same
  process, the peak of Python allocations (`tracemalloc`, which does not
  see the Rust core's allocations). The core streams the file (issue #5);
  the most events its replay engine held at once is reported from the
  report's `stats`.
* `bench_record_percentiles_with_sqlite`: record() timed one call at a
  time (perf_counter_ns pairs), back to back in blocks of BLOCK_CALLS with
  an untimed flush() between blocks (the method of bench_record.py), with
  the in-memory store only and with an SQLiteStore sink, alternately. The
  empty timer pair and a control call (sorted() of 20 ints) are timed in
  a block of their own after each block of calls. The store's write_batch
  calls are timestamped to show how much SQLite ingested while calls were
  being timed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from itertools import repeat
from pathlib import Path
from typing import Any

import cra
import cra.storage
import pytest
from conftest import (
    EVENT_TYPE,
    PAYLOAD,
    QUICK,
    Report,
    flush_thread_ids,
    summarise,
    thread_cpu_ns,
)
from cra.carp import CARPRequest


def _storage_module() -> Any:
    """cra.storage, or the file named by CRA_BENCH_STORAGE loaded in its
    place (to compare two versions of the stores against the same core,
    e.g. `git show HEAD:python/cra/storage.py > /tmp/storage_head.py`)."""
    alt = os.environ.get("CRA_BENCH_STORAGE")
    if not alt:
        return cra.storage
    spec = importlib.util.spec_from_file_location("cra._bench_storage", alt)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


STORAGE = _storage_module()
SQLiteStore = STORAGE.SQLiteStore
JSONLStore = STORAGE.JSONLStore
#: Appended to every section name when another storage module is measured.
TAG = f" [storage: {os.environ['CRA_BENCH_STORAGE']}]" if "CRA_BENCH_STORAGE" in os.environ else ""

#: Events per write_batch call: the flush thread's largest batch.
BATCH = 4096
#: Events written by the write_batch benches (per round).
INGEST_EVENTS = 3 * BATCH if QUICK else 200_000
#: Events recorded by the end-to-end SQLite bench (per round).
E2E_EVENTS = 10_000 if QUICK else 200_000
#: Events recorded by the core JSONL sink bench (per round).
JSONL_EVENTS = 20_000 if QUICK else 500_000
#: Events of the replayed trace.
REPLAY_EVENTS = 3_000 if QUICK else 100_000
#: Individually timed record() calls per configuration and round.
PCT_CALLS = 20_000 if QUICK else 200_000
#: Timed calls per block (fewer than the 65,536-record queue).
BLOCK_CALLS = 50_000
WARMUP_CALLS = 2_000 if QUICK else 20_000
#: Rounds of each measurement; medians over rounds are reported.
ROUNDS = 1 if QUICK else 3
SLOW_NS = 5_000

SQLITE_GOAL = ">= 200,000"
JSONL_GOAL = ">= 500,000"
RECORD_GOALS = {"p99.99": "<= 5,000 ns"}

EXAMPLE_ATLAS = Path(cra.__file__).parent / "examples" / "support"
AGENT = "bench-agent"
GOAL = "Help the customer of ticket T-1042, who wants a refund"


def load() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def _flush_thread_of(make: Callable[[], cra.Runtime]) -> tuple[cra.Runtime, int | None]:
    """A runtime from `make()` and the id of its flush thread (Linux; None
    when it cannot be told apart)."""
    before = set(flush_thread_ids())
    rt = make()
    deadline = time.monotonic() + 2.0
    new: list[int] = []
    while time.monotonic() < deadline:  # the thread names itself when it first runs
        new = sorted(set(flush_thread_ids()) - before)
        if new:
            break
        time.sleep(0.001)
    return rt, new[0] if len(new) == 1 else None


def _cpu_delta(tid: int | None, cpu0: int | None) -> int | None:
    cpu1 = thread_cpu_ns(tid)
    return cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None


def _median(values: Sequence[float]) -> float:
    return statistics.median(values)


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
    rate = n / _median(walls)
    report.add(section, f"write_batch x{BATCH}", rate, "events/s", goal)
    report.add(section, "write_batch, per CPU-second", n / _median(cpus), "events/s")
    report.add(section, "write_batch per event", _median(walls) / n * 1e9, "ns")
    report.add(section, "flush() after the batches", _median(flushes) * 1e3, "ms")
    report.add(
        section, "incl. flush()", n / _median([w + f for w, f in zip(walls, flushes)]), "events/s"
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


# -- 1. SQLite ingest --------------------------------------------------------


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


def bench_sqlite_floor(benchmark: Any, report: Report, sealed: Any, tmp_path: Path) -> None:
    """The SQLite part of write_batch alone: the same rows, built beforehand,
    inserted with sqlite3 into a database set up as SQLiteStore sets up its
    own (WAL, synchronous=NORMAL, the store's schema), one transaction per
    batch of BATCH. What no change to the Python side can beat."""
    _, events = sealed
    rows = [(e.session_id, e.sequence, e.event_type, e.timestamp, e.to_json()) for e in events]
    chunks = [rows[i : i + BATCH] for i in range(0, len(rows), BATCH)]
    n = len(rows)
    walls: list[float] = []
    cpus: list[float] = []

    def one_round(i: int) -> None:
        db = sqlite3.connect(tmp_path / f"floor-{i}.db", isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(STORAGE._SCHEMA)
            c0 = time.thread_time_ns()
            t0 = time.perf_counter_ns()
            for chunk in chunks:
                db.execute("BEGIN")
                db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?)", chunk)
                db.execute("COMMIT")
            t1 = time.perf_counter_ns()
            c1 = time.thread_time_ns()
            assert db.execute("SELECT count(*) FROM events").fetchone()[0] == n
        finally:
            db.close()
        walls.append((t1 - t0) / 1e9)
        cpus.append((c1 - c0) / 1e9)

    rounds = iter(range(ROUNDS))
    benchmark.pedantic(lambda: one_round(next(rounds)), rounds=ROUNDS, iterations=1)
    section = "SQLite ingest (SQLiteStore.write_batch)" + TAG
    report.add(section, "sqlite3 alone, same rows (floor)", n / _median(walls), "events/s")
    report.add(section, "sqlite3 alone, per CPU-second", n / _median(cpus), "events/s")
    benchmark.extra_info.update(events=n, write_s=walls, cpu_s=cpus)


def bench_sqlite_end_to_end(benchmark: Any, report: Report, tmp_path: Path) -> None:
    """cra.Runtime(sinks=[SQLiteStore]): record N events, then flush()."""
    n = E2E_EVENTS
    results: list[tuple[float, float, int | None, float]] = []

    def one_round(i: int) -> None:
        store = SQLiteStore(tmp_path / f"e2e-{i}.db")
        rt, tid = _flush_thread_of(lambda: cra.Runtime(sinks=[store], memory_limit=n + 10_000))
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
            cpu = _cpu_delta(tid, cpu0)
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
    rate = (n - 1) / _median([r[1] for r in results])
    report.add(section, f"record {n // 1000}k..flush()", rate, "events/s", SQLITE_GOAL)
    report.add(section, "record loop alone", (n - 1) / _median([r[0] for r in results]), "events/s")
    cpus = [r[2] for r in results if r[2]]
    if cpus:
        report.add(
            section, "flush thread, per CPU-second", (n - 1) / (_median(cpus) / 1e9), "events/s"
        )
        report.add(section, "flush thread CPU per event", _median(cpus) / (n - 1), "ns")
    benchmark.extra_info.update(events=n, rounds=results, events_per_s=rate)


# -- 2. JSONL write ------------------------------------------------------------


def bench_jsonl_core_sink(benchmark: Any, report: Report, tmp_path: Path) -> None:
    """cra.Runtime(trace_file=...): record N events, then flush() (fsync)."""
    n = JSONL_EVENTS
    results: list[tuple[float, float, float, int | None, int, float]] = []

    def one_round(i: int) -> None:
        path = tmp_path / f"core-{i}.trace.jsonl"
        rt, tid = _flush_thread_of(lambda: cra.Runtime(trace_file=path, memory_limit=n + 10_000))
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
            cpu = _cpu_delta(tid, cpu0)
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
    written = (n - 1) / _median([r[1] for r in results])
    durable = (n - 1) / _median([r[2] for r in results])
    report.add(section, f"record {n // 1000}k..written", written, "events/s", JSONL_GOAL)
    report.add(section, "record..flush() (fsync incl.)", durable, "events/s")
    cpus = [r[3] for r in results if r[3]]
    if cpus:
        report.add(
            section, "flush thread, per CPU-second", (n - 1) / (_median(cpus) / 1e9), "events/s"
        )
        report.add(section, "flush thread CPU per event", _median(cpus) / (n - 1), "ns")
    size = results[-1][4]
    report.add(section, "bytes per event", size / n, "B")
    report.add(section, "written, MB/s", size / 1e6 / _median([r[1] for r in results]), "MB/s")
    benchmark.extra_info.update(events=n, rounds=results, events_per_s=written)


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


# -- 3. replay of a recorded session ------------------------------------------


def _support_atlas(directory: Path) -> Path:
    """The example support atlas, with its reply rate limit and refund
    budget raised so that nothing the trace builder does is refused by them."""
    atlas = directory / "support"
    shutil.copytree(EXAMPLE_ATLAS, atlas)
    policies_path = atlas / "policies" / "support.json"
    policies = json.loads(policies_path.read_text())
    for p in policies:
        if p["policy_id"] == "reply-rate":
            p["parameters"]["max_calls"] = 100_000_000
        if p["policy_id"] == "refund-budget":
            p["parameters"]["limit"] = 100_000_000
    policies_path.write_text(json.dumps(policies))
    return atlas


def _cycle_executions(i: int) -> list[tuple[str, dict[str, Any]]]:
    """Executions of one cycle (after its resolve): four allowed, one denied."""
    ticket = f"T-{i}"
    return [
        ("ticket.lookup", {"ticket_id": ticket}),
        ("customer.lookup", {"email": "ada@example.com"}),
        ("ticket.reply", {"ticket_id": ticket, "body": "Your refund is on its way."}),
        ("ticket.update", {"ticket_id": ticket, "status": "solved"}),
        ("ticket.delete", {"ticket_id": ticket}),
    ]


def _register(rt: cra.Runtime) -> None:
    rt.register_executor("ticket.lookup", lambda ticket_id: {"ticket_id": ticket_id})
    rt.register_executor("customer.lookup", lambda email: {"email": email, "tier": "gold"})
    rt.register_executor("ticket.reply", lambda ticket_id, body: {"sent": True})
    rt.register_executor("ticket.update", lambda ticket_id, status: {"status": status})


def build_trace(path: Path, atlas: Path, events: int) -> dict[str, Any]:
    """One session of exactly `events` events in `path`: cycles of a resolve,
    an x.llm.call record and five executions (four succeed, the delete is
    denied by policy), then x.agent.note records up to the count, then
    session.ended."""
    rt = cra.Runtime(trace_file=path, atlases=[atlas], memory_limit=events + 10_000)
    _register(rt)
    sid = rt.create_session(agent_id=AGENT, goal=GOAL)
    stats = {"resolves": 0, "success": 0, "denied": 0, "other": 0}
    i = 0
    per_cycle = 31
    while rt.stats()["recorded"] + per_cycle + 1 <= events:
        res = rt.resolve(CARPRequest.resolve(sid, AGENT, GOAL, risk_tier="medium"))
        stats["resolves"] += 1
        rt.record(sid, "x.llm.call", {"model": "example", "prompt_tokens": 812 + i % 7})
        for action, params in _cycle_executions(i):
            req = CARPRequest.execute(sid, AGENT, GOAL, res.resolution_id, action, params)
            status = rt.execute(req).status
            stats[status if status in stats else "other"] += 1
        i += 1
    while rt.stats()["recorded"] + 1 < events:
        rt.record(sid, "x.agent.note", {"note": "filler"})
    rt.end_session(sid, "completed")
    assert rt.flush(timeout=300)
    assert rt.stats()["written"] == events, rt.stats()
    rt.close()
    assert stats["other"] == 0, stats
    return stats


@pytest.fixture(scope="module")
def replay_trace(tmp_path_factory: Any) -> Iterator[tuple[Path, Path, dict[str, Any]]]:
    directory = tmp_path_factory.mktemp("replay")
    atlas = _support_atlas(directory)
    path = directory / "session.trace.jsonl"
    t0 = time.perf_counter()
    stats = build_trace(path, atlas, REPLAY_EVENTS)
    stats["build_s"] = time.perf_counter() - t0
    yield path, atlas, stats
    path.unlink()


#: Runs in a fresh interpreter: one timed replay (peak RSS growth measured
#: around it), then one under tracemalloc. Prints one JSON line.
REPLAY_SCRIPT = r"""
import json, os, resource, sys, time, tracemalloc
import cra

def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return -1

path, atlas = sys.argv[1], sys.argv[2]
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS
    reset = True
except OSError:
    reset = False
rss0, hwm0 = status("VmRSS"), status("VmHWM")
maxrss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
t0 = time.perf_counter()
report = cra.replay(path, [atlas])
t1 = time.perf_counter()
hwm1 = status("VmHWM")
maxrss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
tracemalloc.start()
report2 = cra.replay(path, [atlas])
_, py_peak = tracemalloc.get_traced_memory()
tracemalloc.stop()
print(json.dumps({
    "seconds": t1 - t0, "stats": report.stats,
    "identical": report.identical and report2.identical,
    "requests": len(report.requests), "matched": report.matched,
    "executions_counted": report.executions_counted,
    "hwm_reset": reset, "rss_before": rss0, "hwm_before": hwm0, "hwm_after": hwm1,
    "maxrss_before": maxrss0, "maxrss_after": maxrss1, "tracemalloc_peak": py_peak,
}))
"""


def bench_replay(benchmark: Any, report: Report, replay_trace: Any) -> None:
    """cra.replay of the recorded session against the same atlas, each round
    in a fresh interpreter."""
    path, atlas, built = replay_trace
    runs: list[dict[str, Any]] = []

    def one_round() -> None:
        out = subprocess.run(
            [sys.executable, "-c", REPLAY_SCRIPT, str(path), str(atlas)],
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        r["load1"] = os.getloadavg()[0]
        runs.append(r)

    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    for r in runs:
        assert r["identical"], r
        assert r["requests"] == r["matched"] == built["resolves"], (r, built)
        assert r["executions_counted"] == built["success"], (r, built)
    section = f"replay of a {REPLAY_EVENTS:,}-event trace (cra.replay)"
    seconds = _median([r["seconds"] for r in runs])
    mb = 1e6
    report.add(section, "wall time", seconds * 1e3, "ms")
    report.add(section, "events replayed per second", REPLAY_EVENTS / seconds, "events/s")
    report.add(
        section,
        "events held at once (replay engine)",
        max(r["stats"]["peak_events_held"] for r in runs),
        "events",
    )
    hwm = _median([r["hwm_after"] - r["rss_before"] for r in runs])
    report.add(section, "peak RSS growth (VmHWM - VmRSS)", hwm / mb, "MB")
    report.add(section, "peak RSS (VmHWM)", _median([r["hwm_after"] for r in runs]) / mb, "MB")
    # ru_maxrss is not reported: a child inherits the peak of the process it
    # was forked from (pytest's), so its growth understates replay's (it is
    # kept in extra_info).
    report.add(
        section,
        "tracemalloc peak (Python only)",
        _median([r["tracemalloc_peak"] for r in runs]) / mb,
        "MB",
    )
    report.add(section, "trace file", path.stat().st_size / mb, "MB")
    report.add(section, "resolves re-run", built["resolves"], "requests")
    benchmark.extra_info.update(
        events=REPLAY_EVENTS, trace_bytes=path.stat().st_size, built=built, runs=runs
    )


# -- 4. record() percentiles while SQLite ingests -------------------------------


class TimedSQLiteStore(SQLiteStore):
    """An SQLiteStore that notes when each write_batch call ran."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.calls: list[tuple[int, int, int]] = []

    def write_batch(self, events: Any) -> None:
        t0 = time.perf_counter_ns()
        super().write_batch(events)
        self.calls.append((t0, time.perf_counter_ns(), len(events)))


_CONTROL_LIST = list(range(20))


def _control() -> Any:
    return sorted(_CONTROL_LIST)


def _timed_record(
    record: Any,
    sid: str,
    calls: Any,
    start: int,
    stop: int,
    pc: Callable[[], int] = time.perf_counter_ns,
) -> None:
    for i in range(start, stop):
        t0 = pc()
        record(sid, EVENT_TYPE, PAYLOAD)
        calls[i] = pc() - t0


def _timed_empty_and_control(
    empty: Any,
    ctl: Any,
    start: int,
    stop: int,
    pc: Callable[[], int] = time.perf_counter_ns,
    control: Callable[[], Any] = _control,
) -> None:
    for i in range(start, stop):
        t0 = pc()
        t1 = pc()
        control()
        t2 = pc()
        empty[i] = t1 - t0
        ctl[i] = t2 - t1


def _overlap(calls: list[tuple[int, int, int]], windows: list[tuple[int, int]]) -> tuple[int, int]:
    """ns of write_batch inside the timed windows, and events of the batches
    that overlapped them."""
    busy = events = 0
    for a, b, n in calls:
        touched = False
        for lo, hi in windows:
            inside = min(b, hi) - max(a, lo)
            if inside > 0:
                busy += inside
                touched = True
        events += n if touched else 0
    return busy, events


def _record_percentiles(sqlite_path: Path | None) -> dict[str, Any]:
    """PCT_CALLS record() calls timed one by one (see the module docstring)."""
    n = PCT_CALLS
    store = TimedSQLiteStore(sqlite_path) if sqlite_path is not None else None
    rt = cra.Runtime(
        sinks=[store] if store is not None else [], memory_limit=n + WARMUP_CALLS + 10_000
    )
    calls = array("q", bytes(8 * n))
    empty = array("q", bytes(8 * n))
    ctl = array("q", bytes(8 * n))
    windows: list[tuple[int, int]] = []
    try:
        sid = rt.create_session(agent_id=AGENT, goal="benchmark")
        record = rt.record
        for _ in repeat(None, WARMUP_CALLS):
            record(sid, EVENT_TYPE, PAYLOAD)
        for start in range(0, n, BLOCK_CALLS):
            stop = min(n, start + BLOCK_CALLS)
            assert rt.flush(timeout=600)  # untimed: room in the queue
            w0 = time.perf_counter_ns()
            _timed_record(record, sid, calls, start, stop)
            windows.append((w0, time.perf_counter_ns()))
            _timed_empty_and_control(empty, ctl, start, stop)
        assert rt.flush(timeout=600)
        stats = rt.stats()
    finally:
        rt.close()
        if store is not None:
            store.close()
    assert stats["written"] == n + WARMUP_CALLS + 1 and stats["sink_errors"] == 0
    out: dict[str, Any] = {
        "raw": summarise(calls),
        "timer": summarise(empty),
        "control": summarise(ctl),
        "slow": sum(1 for d in calls if d > SLOW_NS),
        "over_1ms": sum(1 for d in calls if d > 1_000_000),
        "control_over_1ms": sum(1 for d in ctl if d > 1_000_000),
        "slow_control": sum(1 for d in ctl if d > SLOW_NS),
        "timed_ns": sum(hi - lo for lo, hi in windows),
        "high_water": stats["high_water_mark"],
        "load1": os.getloadavg()[0],
    }
    out["corrected"] = {k: max(0, v - out["timer"]["p50"]) for k, v in out["raw"].items()}
    if store is not None:
        busy, ingested = _overlap(store.calls, windows)
        out["sqlite_busy_ns"] = busy
        out["sqlite_events_during_timing"] = ingested
        out["sqlite_batches"] = len(store.calls)
    return out


def bench_record_percentiles_with_sqlite(benchmark: Any, report: Report, tmp_path: Path) -> None:
    """record() percentiles with the in-memory store only, and with an
    SQLiteStore ingesting, alternately (ROUNDS each); medians over rounds."""
    runs: dict[str, list[dict[str, Any]]] = {"memory": [], "sqlite": []}
    counter = iter(range(ROUNDS))

    def one_round() -> None:
        i = next(counter)
        runs["memory"].append(_record_percentiles(None))
        runs["sqlite"].append(_record_percentiles(tmp_path / f"pct-{i}.db"))

    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    keys = ("p50", "p99", "p99.9", "p99.99")
    for config, label in (
        ("memory", "in-memory store only"),
        ("sqlite", "Runtime(sinks=[SQLiteStore]) ingesting"),
    ):
        section = f"record() per call, back to back, {label}{TAG}"
        rs = runs[config]
        for part, name in (("raw", "raw"), ("timer", "timer pair"), ("corrected", "corrected")):
            for key in keys:
                goal = RECORD_GOALS.get(key, "") if part == "corrected" else ""
                value = _median([r[part][key] for r in rs])
                report.add(section, f"{key} {name}", value, "ns", goal)
        for key in ("p50", "p99", "p99.99"):
            report.add(
                section, f"{key} control call", _median([r["control"][key] for r in rs]), "ns"
            )
        report.add(section, "calls > 5 us", _median([r["slow"] for r in rs]), "calls")
        report.add(
            section, "control calls > 5 us", _median([r["slow_control"] for r in rs]), "calls"
        )
        report.add(section, "max raw", _median([r["raw"]["max"] for r in rs]), "ns")
        report.add(section, "calls > 1 ms", _median([r["over_1ms"] for r in rs]), "calls")
        report.add(
            section, "control calls > 1 ms", _median([r["control_over_1ms"] for r in rs]), "calls"
        )
        report.add(section, "calls timed per round", PCT_CALLS, "calls")
        if config == "sqlite":
            busy = _median([r["sqlite_busy_ns"] / r["timed_ns"] * 100 for r in rs])
            report.add(section, "write_batch busy in timed blocks", busy, "%")
            report.add(
                section,
                "events ingested during timed blocks",
                _median([r["sqlite_events_during_timing"] for r in rs]),
                "events",
            )
    benchmark.extra_info.update(calls=PCT_CALLS, runs=runs)
