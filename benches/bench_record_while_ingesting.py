"""record() percentiles while an SQLiteStore ingests (issue 5).

Run: `.venv/bin/python -m pytest benches/bench_record_while_ingesting.py -q`

`bench_record_percentiles_with_sqlite`: record() timed one call at a time
(perf_counter_ns pairs), back to back in blocks of BLOCK_CALLS with an
untimed flush() between blocks (the method of bench_record.py), with the
in-memory store only and with an SQLiteStore sink, alternately. The empty
timer pair and a control call (sorted() of 20 ints) are timed in a block
of their own after each block of calls. The store's write_batch calls are
timestamped to show how much SQLite ingested while calls were being timed.
"""

from __future__ import annotations

import os
import time
from array import array
from collections.abc import Callable
from itertools import repeat
from pathlib import Path
from typing import Any

import cra
from conftest import EVENT_TYPE, PAYLOAD, QUICK, Report, summarise, timed_empty_and_control
from storage_helpers import AGENT, ROUNDS, TAG, SQLiteStore, median

#: Individually timed record() calls per configuration and round.
PCT_CALLS = 20_000 if QUICK else 200_000
#: Timed calls per block (fewer than the 65,536-record queue).
BLOCK_CALLS = 50_000
WARMUP_CALLS = 2_000 if QUICK else 20_000
SLOW_NS = 5_000
RECORD_GOALS = {"p99.99": "<= 5,000 ns"}


class TimedSQLiteStore(SQLiteStore):
    """An SQLiteStore that notes when each write_batch call ran."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.calls: list[tuple[int, int, int]] = []

    def write_batch(self, events: Any) -> None:
        t0 = time.perf_counter_ns()
        super().write_batch(events)
        self.calls.append((t0, time.perf_counter_ns(), len(events)))


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
            timed_empty_and_control(empty, ctl, start, stop)
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
                value = median([r[part][key] for r in rs])
                report.add(section, f"{key} {name}", value, "ns", goal)
        for key in ("p50", "p99", "p99.99"):
            report.add(
                section, f"{key} control call", median([r["control"][key] for r in rs]), "ns"
            )
        report.add(section, "calls > 5 us", median([r["slow"] for r in rs]), "calls")
        report.add(
            section, "control calls > 5 us", median([r["slow_control"] for r in rs]), "calls"
        )
        report.add(section, "max raw", median([r["raw"]["max"] for r in rs]), "ns")
        report.add(section, "calls > 1 ms", median([r["over_1ms"] for r in rs]), "calls")
        report.add(
            section, "control calls > 1 ms", median([r["control_over_1ms"] for r in rs]), "calls"
        )
        report.add(section, "calls timed per round", PCT_CALLS, "calls")
        if config == "sqlite":
            busy = median([r["sqlite_busy_ns"] / r["timed_ns"] * 100 for r in rs])
            report.add(section, "write_batch busy in timed blocks", busy, "%")
            report.add(
                section,
                "events ingested during timed blocks",
                median([r["sqlite_events_during_timing"] for r in rs]),
                "events",
            )
    benchmark.extra_info.update(calls=PCT_CALLS, runs=runs)
