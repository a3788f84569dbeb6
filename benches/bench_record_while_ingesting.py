"""record() percentiles while an SQLiteStore ingests (issue 5).

Run: `.venv/bin/python -m pytest benches/bench_record_while_ingesting.py -q`

`bench_record_percentiles_with_sqlite`: record() timed one call at a time
(perf_counter_ns pairs), back to back in blocks of BLOCK_CALLS with an
untimed flush() between blocks (the method of bench_record.py), with three
sink configurations in turn each round: the in-memory store only; an
SQLiteStore, which the flush thread writes natively (Rust, no GIL); and
the same store written through Python (a subclass whose `write_batch`
override makes the runtime call it, holding the GIL: the path of every
store before the native writer). The empty timer pair and a control call
(sorted() of 20 ints) are timed in a block of their own after each block
of calls. That SQLite ingested while calls were timed is shown by the
runtime's `written` count (a batch counts once every sink has stored it)
across each timed block, and by the flush thread's CPU time in them. The
timing thread's context switches in the timed blocks tell a wait
(voluntary: it blocked, e.g. on the GIL the flush thread holds in a Python
`write_batch`) from a preemption (involuntary: the two vCPUs are busy).
"""

from __future__ import annotations

import os
import threading
import time
from array import array
from collections.abc import Callable
from itertools import repeat
from pathlib import Path
from typing import Any

import cra
from conftest import (
    EVENT_TYPE,
    PAYLOAD,
    QUICK,
    Report,
    summarise,
    thread_cpu_ns,
    timed_empty_and_control,
)
from storage_helpers import AGENT, ROUNDS, TAG, SQLiteStore, cpu_delta, flush_thread_of, median

#: Individually timed record() calls per configuration and round.
PCT_CALLS = 20_000 if QUICK else 200_000
#: Timed calls per block (fewer than the 65,536-record queue).
BLOCK_CALLS = 50_000
WARMUP_CALLS = 2_000 if QUICK else 20_000
SLOW_NS = 5_000
RECORD_GOALS = {"p99.99": "<= 5,000 ns"}


class PythonPathSQLiteStore(SQLiteStore):
    """An SQLiteStore the runtime writes through Python: overriding
    `write_batch` turns its native sink off (see `SQLiteStore._native_sink`)."""

    def write_batch(self, events: Any) -> None:
        super().write_batch(events)


#: Sink configurations: name -> (store class or None, section label).
CONFIGS: dict[str, tuple[Any, str]] = {
    "memory": (None, "in-memory store only"),
    "sqlite": (SQLiteStore, "Runtime(sinks=[SQLiteStore]) ingesting natively"),
    "sqlite_python": (
        PythonPathSQLiteStore,
        "Runtime(sinks=[SQLiteStore]) ingesting through Python write_batch",
    ),
}


def _context_switches() -> tuple[int, int] | None:
    """This thread's (voluntary, involuntary) context switches so far (Linux)."""
    try:
        status = Path(f"/proc/self/task/{threading.get_native_id()}/status").read_text()
    except OSError:
        return None
    found = dict(line.split(":", 1) for line in status.splitlines() if "ctxt_switches" in line)
    return int(found["voluntary_ctxt_switches"]), int(found["nonvoluntary_ctxt_switches"])


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


def _record_percentiles(store_class: Any, sqlite_path: Path) -> dict[str, Any]:
    """PCT_CALLS record() calls timed one by one (see the module docstring)."""
    n = PCT_CALLS
    store = store_class(sqlite_path) if store_class is not None else None
    hook = getattr(store, "_native_sink", None)  # None: a storage module from before it
    if hook is not None:
        assert (hook() is not None) == (store_class is SQLiteStore), "the store took the wrong path"
    rt, tid = flush_thread_of(
        lambda: cra.Runtime(
            sinks=[store] if store is not None else [], memory_limit=n + WARMUP_CALLS + 10_000
        )
    )
    calls = array("q", bytes(8 * n))
    empty = array("q", bytes(8 * n))
    ctl = array("q", bytes(8 * n))
    timed_ns = ingested = flush_cpu_ns = waits = preemptions = 0
    try:
        sid = rt.create_session(agent_id=AGENT, goal="benchmark")
        record = rt.record
        for _ in repeat(None, WARMUP_CALLS):
            record(sid, EVENT_TYPE, PAYLOAD)
        for start in range(0, n, BLOCK_CALLS):
            stop = min(n, start + BLOCK_CALLS)
            assert rt.flush(timeout=600)  # untimed: room in the queue
            written0 = rt.stats()["written"]
            cpu0 = thread_cpu_ns(tid)
            switches0 = _context_switches()
            w0 = time.perf_counter_ns()
            _timed_record(record, sid, calls, start, stop)
            w1 = time.perf_counter_ns()
            switches1 = _context_switches()
            cpu = cpu_delta(tid, cpu0)
            if switches0 is not None and switches1 is not None:
                waits += switches1[0] - switches0[0]
                preemptions += switches1[1] - switches0[1]
            ingested += rt.stats()["written"] - written0
            timed_ns += w1 - w0
            flush_cpu_ns += cpu if cpu is not None else 0
            timed_empty_and_control(empty, ctl, start, stop)
        assert rt.flush(timeout=600)
        stats = rt.stats()
        if store is not None:
            assert store.session(sid)["event_count"] == n + WARMUP_CALLS + 1
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
        "timed_ns": timed_ns,
        "ingested_during_timing": ingested,
        "flush_cpu_ns": flush_cpu_ns if tid is not None else None,
        "waits": waits,
        "preemptions": preemptions,
        "high_water": stats["high_water_mark"],
        "load1": os.getloadavg()[0],
    }
    out["corrected"] = {k: max(0, v - out["timer"]["p50"]) for k, v in out["raw"].items()}
    return out


def bench_record_percentiles_with_sqlite(benchmark: Any, report: Report, tmp_path: Path) -> None:
    """record() percentiles with each configuration of CONFIGS in turn,
    ROUNDS rounds; medians over rounds."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in CONFIGS}
    counter = iter(range(ROUNDS))

    def one_round() -> None:
        i = next(counter)
        for name, (store_class, _) in CONFIGS.items():
            runs[name].append(_record_percentiles(store_class, tmp_path / f"pct-{name}-{i}.db"))

    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    keys = ("p50", "p99", "p99.9", "p99.99")
    for config, (store_class, label) in CONFIGS.items():
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
        report.add(
            section,
            "timing thread waits (voluntary switches)",
            median([r["waits"] for r in rs]),
            "",
        )
        report.add(
            section,
            "timing thread preempted (involuntary switches)",
            median([r["preemptions"] for r in rs]),
            "",
        )
        report.add(section, "load average (1 min)", median([r["load1"] for r in rs]), "")
        if store_class is not None:
            report.add(
                section,
                "events ingested during timed blocks",
                median([r["ingested_during_timing"] for r in rs]),
                "events",
            )
            cpus = [r["flush_cpu_ns"] / r["timed_ns"] * 100 for r in rs if r["flush_cpu_ns"]]
            if cpus:
                report.add(section, "flush thread CPU in timed blocks", median(cpus), "%")
    benchmark.extra_info.update(calls=PCT_CALLS, runs=runs)
