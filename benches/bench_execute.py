"""Execute benchmarks from Python (issue 4): the `rt.execute()` round trip
with a trivial executor, and 8 threads executing against one rate limit.

Run: `.venv/bin/python -m pytest benches/bench_execute.py -q`
(`CRA_BENCH_QUICK=1` for a smoke run of a few seconds).

The round trip runs every check of the protocol (request, resolution,
action, policy re-check, parameters against the compiled schema), the
executor, and records 4 events (request received, action requested,
approved, executed) that the flush thread seals on the other core. The
resolution lives a day (atlas `default_ttl_seconds` 86,400) and no rate
limit applies, so nothing is ever denied; every round checks that each
execution ran and wrote its events. Request ids are minted before timing
and stored into the one request dict outside the timed region.

The SQLite pair (issue 13) times the same round trip with an SQLiteStore
sink, once with `durability="async"` (the call returns once its events are
queued) and once with `"sync"` (it returns once they are written), and
reports the ratio of their p50s; each round checks the store file holds
every execution's `action.executed` event.

The threaded bench is a correctness check first: 8 threads x 500 attempts
against a global limit of 1,000 per hour must give exactly 1,000 successes.
"""

from __future__ import annotations

import itertools
import statistics
import threading
import time
from collections import Counter
from itertools import repeat
from pathlib import Path
from typing import Any

import cra
import pytest
from conftest import QUICK, Report, flush_thread_ids
from cra.storage import SQLiteStore
from resolve_fixtures import (
    AGENT,
    GOAL,
    PERCENTILE_CALLS,
    ROUNDS,
    WARMUP_CALLS,
    WORKED_ATLAS,
    Samples,
    load_now,
    median_of,
    memory_for,
    new_flush_thread,
    new_ids,
    percentile_loop,
    report_tight_loop,
    samples_info,
    samples_rows,
    show,
    tight_loop,
    worked_manifest,
)

EXECUTE_GOALS = {"p50": "<= 5,000 ns"}
#: Events an execution that succeeds records.
EVENTS_PER_EXECUTE = 4
#: Events of the session before the first execution (started + one resolve).
EVENTS_BEFORE = 1 + 8
LOOP_CALLS = 500 if QUICK else 10_000
LOOP_ROUNDS = 2 if QUICK else 5
THREADS = 8
ATTEMPTS_PER_THREAD = 500
LIMIT = 1_000
HEADER = ["ns per call", "min", "p50", "p90", "p99", "p99.9", "max"]
ACTION = "resource.get"
PARAMETERS = {"resource_id": "r-1"}


def get_resource(resource_id: str) -> dict[str, str]:
    """The trivial executor."""
    return {"resource_id": resource_id}


def _execute_setup(
    events: int, manifest: dict[str, Any] | None = None, agent_id: str = AGENT
) -> tuple[cra.Runtime, str, dict[str, Any]]:
    """A runtime with the worked example (a day-long TTL), a session, one
    resolution and the executor; returns the execute request dict."""
    rt = cra.Runtime(memory_limit=memory_for(events))
    rt.load_atlas(manifest or worked_manifest(default_ttl_seconds=86_400), base_dir=WORKED_ATLAS)
    rt.register_executor(ACTION, get_resource)
    sid = rt.create_session(agent_id=agent_id, goal="benchmark")
    res = rt.resolve(cra.CARPRequest.resolve(sid, agent_id, GOAL, timestamp=rt.timestamp()))
    assert res.ttl_seconds == 86_400 and res.is_allowed(ACTION)
    req = cra.CARPRequest.execute(
        sid, agent_id, GOAL, res.resolution_id, ACTION, PARAMETERS, timestamp=rt.timestamp()
    )
    return rt, sid, req


def _check_all_ran(rt: cra.Runtime, sid: str, executions: int, exact: bool = True) -> None:
    """Every execution succeeded and wrote its events."""
    assert rt.flush(timeout=120)
    stats = rt.stats()
    assert stats["dropped"] == 0 and stats["written"] == stats["recorded"]
    assert (stats["written"] - EVENTS_BEFORE) % EVENTS_PER_EXECUTE == 0, stats
    ran = len(rt.events(sid, event_type="action.executed"))
    assert ran == (stats["written"] - EVENTS_BEFORE) // EVENTS_PER_EXECUTE
    if exact:
        assert ran == executions, (ran, executions)


def _execute_round(n: int) -> Samples:
    total = n + WARMUP_CALLS
    rt, sid, req = _execute_setup(EVENTS_BEFORE + EVENTS_PER_EXECUTE * total)
    try:
        ids = new_ids(total)
        execute = rt.execute
        for i in range(n, total):
            req["request_id"] = ids[i]
            resp = execute(req)
        assert resp.status == "success" and resp.result == PARAMETERS, resp
        rt.flush()

        def arg_at(i: int, req: dict[str, Any] = req, ids: list[str] = ids) -> dict[str, Any]:
            req["request_id"] = ids[i]
            return req

        samples = percentile_loop(execute, arg_at, n, between=rt.flush)
        _check_all_ran(rt, sid, total)
    finally:
        rt.close()
    return samples


def bench_execute_percentiles(benchmark: Any, report: Report, capsys: Any) -> None:
    """rt.execute(request_dict) one call at a time, trivial executor, events included."""
    load = load_now()
    rounds: list[Samples] = []
    benchmark.pedantic(
        lambda: rounds.extend(_execute_round(PERCENTILE_CALLS) for _ in range(ROUNDS)),
        rounds=1,
        iterations=1,
        warmup_rounds=0,
    )
    load_after = load_now()
    section = "rt.execute(dict) per call"
    for key in ("p50", "p99", "p99.9"):
        value = median_of(rounds, "corrected", key)
        report.add(section, f"{key} corrected", value, "ns", EXECUTE_GOALS.get(key, ""))
    report.add(section, "timer pair p50", median_of(rounds, "timer", "p50"), "ns")
    benchmark.extra_info.update(samples_info("", rounds))
    benchmark.extra_info.update(
        goals=EXECUTE_GOALS,
        events_per_call=EVENTS_PER_EXECUTE,
        load_before=load,
        load_after=load_after,
    )
    show(
        capsys,
        f"{section}: median of {len(rounds)} rounds x {rounds[0].n:,} calls "
        f"(load {load:.2f} -> {load_after:.2f}; goals {EXECUTE_GOALS})",
        HEADER,
        samples_rows("execute", rounds),
    )


def bench_execute_loop(benchmark: Any, report: Report, capsys: Any) -> None:
    """rt.execute(dict) back to back (pytest-benchmark's per-call figure)."""
    # Warm-up, the warm-up round, the rounds and pytest-benchmark's extra call.
    total = WARMUP_CALLS + LOOP_CALLS * (LOOP_ROUNDS + 1) + 1
    load = load_now()
    before = flush_thread_ids()
    rt, sid, req = _execute_setup(EVENTS_BEFORE + EVENTS_PER_EXECUTE * total)
    try:
        execute = rt.execute
        it = iter(new_ids(total))
        spare = iter(new_ids(LOOP_CALLS * 5))

        def target() -> Any:
            req["request_id"] = next(it)
            return execute(req)

        def bookkeeping() -> Any:
            req["request_id"] = next(spare)
            return req

        for _ in repeat(None, WARMUP_CALLS):
            target()
        rt.flush()
        fig = tight_loop(
            benchmark,
            rt,
            target,
            bookkeeping,
            new_flush_thread(before),
            calls_per_round=LOOP_CALLS,
            rounds=LOOP_ROUNDS,
        )
        _check_all_ran(rt, sid, total, exact=not getattr(benchmark, "disabled", False))
    finally:
        rt.close()
    section = "rt.execute(dict) tight loop"
    report_tight_loop(
        report,
        benchmark,
        capsys,
        section,
        fig,
        events_per_call=EVENTS_PER_EXECUTE,
        load=load,
        rounds=LOOP_ROUNDS,
        calls=LOOP_CALLS,
    )


# -- with an SQLite store, durability "async" against "sync" (issue 13) -------

#: Individually timed calls per round of the SQLite pair (each round a fresh
#: runtime and store file).
SQLITE_CALLS = 300 if QUICK else 20_000
SQLITE_GOALS = {"sync p50": "<= 3x async p50"}
SQLITE_SECTION = "rt.execute(dict) per call, SQLiteStore sink"


def _sqlite_execute_round(durability: str, n: int, path: Path) -> Samples:
    """One round: a runtime writing to a fresh SQLiteStore file with the
    given durability, the worked example, n timed executions."""
    total = n + WARMUP_CALLS
    store = SQLiteStore(path)
    rt = cra.Runtime(
        sinks=[store],
        durability=durability,
        memory_limit=memory_for(EVENTS_BEFORE + EVENTS_PER_EXECUTE * total),
    )
    try:
        assert rt.durability == durability
        rt.load_atlas(worked_manifest(default_ttl_seconds=86_400), base_dir=WORKED_ATLAS)
        rt.register_executor(ACTION, get_resource)
        sid = rt.create_session(agent_id=AGENT, goal="benchmark")
        res = rt.resolve(cra.CARPRequest.resolve(sid, AGENT, GOAL, timestamp=rt.timestamp()))
        assert res.is_allowed(ACTION)
        req = cra.CARPRequest.execute(
            sid, AGENT, GOAL, res.resolution_id, ACTION, PARAMETERS, timestamp=rt.timestamp()
        )
        ids = new_ids(total)
        execute = rt.execute
        for i in range(n, total):
            req["request_id"] = ids[i]
            resp = execute(req)
        assert resp.status == "success" and resp.result == PARAMETERS, resp
        rt.flush()

        def arg_at(i: int, req: dict[str, Any] = req, ids: list[str] = ids) -> dict[str, Any]:
            req["request_id"] = ids[i]
            return req

        samples = percentile_loop(execute, arg_at, n, between=rt.flush)
        _check_all_ran(rt, sid, total)
        assert rt.stats()["sink_errors"] == 0
    finally:
        rt.close()
    stored = SQLiteStore(path)
    try:
        assert len(stored.events(sid, event_type="action.executed")) == total
    finally:
        stored.close()
    return samples


@pytest.mark.parametrize("durability", ["async", "sync"])
def bench_execute_sqlite(
    benchmark: Any, report: Report, capsys: Any, tmp_path: Path, durability: str
) -> None:
    """rt.execute(dict) one call at a time into an SQLiteStore, durability
    "async" (returns once queued) or "sync" (returns once written); run both
    to get the ratio of their p50s (issue 13: sync within 3x of async)."""
    load = load_now()
    rounds: list[Samples] = []
    paths = (tmp_path / f"execute-{durability}-{i}.db" for i in itertools.count())
    benchmark.pedantic(
        lambda: rounds.extend(
            _sqlite_execute_round(durability, SQLITE_CALLS, next(paths)) for _ in range(ROUNDS)
        ),
        rounds=1,
        iterations=1,
        warmup_rounds=0,
    )
    load_after = load_now()
    for key in ("p50", "p99", "p99.9"):
        report.add(
            SQLITE_SECTION,
            f"{durability} {key} corrected",
            median_of(rounds, "corrected", key),
            "ns",
        )
    p50 = median_of(rounds, "corrected", "p50")
    info: dict[str, Any] = {"durability": durability, "load_before": load, "load_after": load_after}
    ratio = ""
    other = report.get(SQLITE_SECTION, "async p50 corrected")
    if durability == "sync" and other:
        info["ratio_p50_sync_to_async"] = p50 / other
        report.add(
            SQLITE_SECTION, "sync p50 / async p50", p50 / other, "x", SQLITE_GOALS["sync p50"]
        )
        ratio = f"; sync p50 / async p50 = {p50 / other:.1f}x (goal {SQLITE_GOALS['sync p50']})"
    benchmark.extra_info.update(samples_info("", rounds))
    benchmark.extra_info.update(info, events_per_call=EVENTS_PER_EXECUTE)
    show(
        capsys,
        f"{SQLITE_SECTION}, durability {durability!r}: median of {len(rounds)} rounds x "
        f"{rounds[0].n:,} calls (load {load:.2f} -> {load_after:.2f}){ratio}",
        HEADER,
        samples_rows("execute", rounds),
    )


# -- threads against one rate limit -------------------------------------------


def _limited_manifest() -> dict[str, Any]:
    """The worked example with one global limit of LIMIT gets per hour."""
    manifest = worked_manifest(default_ttl_seconds=86_400)
    manifest["policies"] = [
        *manifest["policies"],
        {
            "policy_id": "global-get-limit",
            "type": "rate_limit",
            "actions": [ACTION],
            "parameters": {"max_calls": LIMIT, "window_seconds": 3_600, "scope": "global"},
        },
    ]
    return manifest


def _hammer(threads: int, attempts: int) -> dict[str, Any]:
    """`threads` agents (one session each) make `attempts` executions each
    against the one global limit, all released at once."""
    manifest = _limited_manifest()
    rt = cra.Runtime(memory_limit=memory_for(threads * (EVENTS_BEFORE + 6 * attempts)))
    rt.load_atlas(manifest, base_dir=WORKED_ATLAS)
    ran = itertools.count()

    def limited_get(resource_id: str) -> dict[str, str]:
        next(ran)  # atomic under the GIL
        return {"resource_id": resource_id}

    rt.register_executor(ACTION, limited_get)
    work: list[tuple[str, list[dict[str, Any]]]] = []
    for t in range(threads):
        agent = f"agent-{t}"
        sid = rt.create_session(agent_id=agent, goal="benchmark")
        res = rt.resolve(cra.CARPRequest.resolve(sid, agent, GOAL, timestamp=rt.timestamp()))
        ts = rt.timestamp()
        reqs = [
            cra.CARPRequest.execute(
                sid, agent, GOAL, res.resolution_id, ACTION, PARAMETERS, request_id=i, timestamp=ts
            )
            for i in new_ids(attempts)
        ]
        work.append((sid, reqs))
    outcomes: list[Counter[str]] = [Counter() for _ in range(threads)]
    barrier = threading.Barrier(threads + 1)

    def agent_thread(k: int) -> None:
        execute = rt.execute
        seen = outcomes[k]
        _, reqs = work[k]
        barrier.wait()
        for req in reqs:
            resp = execute(req)
            seen[resp.status if resp.ok else f"{resp.status}:{resp.error.code}"] += 1

    pool = [threading.Thread(target=agent_thread, args=(k,)) for k in range(threads)]
    for th in pool:
        th.start()
    barrier.wait()
    t0 = time.perf_counter()
    for th in pool:
        th.join()
    seconds = time.perf_counter() - t0
    try:
        assert rt.flush(timeout=120)
        chains_valid = all(rt.verify(sid).valid for sid, _ in work)
        stats = rt.stats()
    finally:
        rt.close()
    total: Counter[str] = Counter()
    for c in outcomes:
        total.update(c)
    return {
        "seconds": seconds,
        "outcomes": dict(total),
        "per_thread_successes": [c["success"] for c in outcomes],
        "executor_runs": next(ran),
        "chains_valid": chains_valid,
        "events": stats["written"],
        "dropped": stats["dropped"],
    }


def _check_limit_held(out: dict[str, Any], attempts: int) -> None:
    """The correctness check: exactly LIMIT successes, every other attempt
    denied by the rate limit, the executor ran exactly LIMIT times."""
    assert out["outcomes"].get("success", 0) == LIMIT, out["outcomes"]
    assert out["outcomes"].get("denied:RATE_LIMIT_EXCEEDED", 0) == attempts - LIMIT, out["outcomes"]
    assert out["executor_runs"] == LIMIT
    assert out["chains_valid"] and out["dropped"] == 0


def bench_execute_threads_rate_limit(benchmark: Any, report: Report, capsys: Any) -> None:
    """8 threads x 500 executions against one global limit of 1,000 per hour."""
    attempts = THREADS * ATTEMPTS_PER_THREAD
    load = load_now()
    multi: list[dict[str, Any]] = []
    single: list[dict[str, Any]] = []

    def run() -> None:
        for _ in range(ROUNDS):
            multi.append(_hammer(THREADS, ATTEMPTS_PER_THREAD))
            single.append(_hammer(1, attempts))

    benchmark.pedantic(run, rounds=1, iterations=1, warmup_rounds=0)
    load_after = load_now()
    for out in multi + single:
        _check_limit_held(out, attempts)

    def rate(outs: list[dict[str, Any]]) -> float:
        return statistics.median(attempts / o["seconds"] for o in outs)

    multi_rate, single_rate = rate(multi), rate(single)
    section = f"{THREADS} threads x {ATTEMPTS_PER_THREAD} executions, one limit of {LIMIT:,}/h"
    report.add(section, "attempts/s, 8 threads (median)", multi_rate, "exec/s")
    report.add(section, "attempts/s, 1 thread, same 4,000 (median)", single_rate, "exec/s")
    report.add(
        section, "successes (every round)", multi[-1]["outcomes"]["success"], "calls", "== 1,000"
    )
    benchmark.extra_info.update(
        attempts=attempts,
        limit=LIMIT,
        rounds=len(multi),
        attempts_per_s_8_threads=multi_rate,
        attempts_per_s_1_thread=single_rate,
        outcomes_8_threads=[o["outcomes"] for o in multi],
        successes_per_thread=[o["per_thread_successes"] for o in multi],
        seconds_8_threads=[o["seconds"] for o in multi],
        seconds_1_thread=[o["seconds"] for o in single],
        events_written=[o["events"] for o in multi],
        load_before=load,
        load_after=load_after,
    )
    rows = []
    for name, outs in (("8 threads", multi), ("1 thread", single)):
        o = outs[-1]
        rows.append(
            [
                name,
                f"{rate(outs):,.0f}",
                f"{statistics.median(x['seconds'] for x in outs) * 1e3:,.1f}",
                f"{o['outcomes'].get('success', 0):,}",
                f"{o['outcomes'].get('denied:RATE_LIMIT_EXCEEDED', 0):,}",
                "yes" if all(x["chains_valid"] for x in outs) else "NO",
            ]
        )
    show(
        capsys,
        f"{section}: median of {len(multi)} rounds (load {load:.2f} -> {load_after:.2f}); "
        f"successes per thread {multi[-1]['per_thread_successes']}",
        ["", "attempts/s", "ms for 4,000", "successes", "denied (rate limit)", "chains valid"],
        rows,
    )
