"""Resolve benchmarks from Python (issue 3): `rt.resolve(request_dict)` and
the `cra.fast` prepared resolver on the worked example (5 actions, 3
policies, 1 context block; 8 TRACE events per resolve), and cedarpy
deciding the same 5 actions with a comparable allow/deny policy set.

Run: `.venv/bin/python -m pytest benches/bench_resolve.py -q`
(`CRA_BENCH_QUICK=1` for a smoke run of a few seconds).

* Percentile benches: >= 100,000 calls per round timed one by one with
  perf_counter_ns; an empty timer pair is timed in every iteration and
  reported separately ("corrected" = raw - median timer pair). Request ids
  are minted before timing; `request_id` is set in the one request dict
  before each call, outside the timed region. The fast path mints its ids
  inside (that is part of its cost). The events are part of the work: each
  resolve queues one record that the flush thread renders into 8 hashed,
  chained events on the other core; an untimed flush() between blocks of
  20,000 calls keeps the queue from filling, and every round checks that
  exactly 8 events per resolve were written.
* Tight-loop benches: pytest-benchmark's own figure, per call, with the
  cost of the loop's bookkeeping (id store, iterator) measured alone and
  reported next to it.
* cedarpy side by side: cra and cedarpy are timed in the same way and
  interleaved round by round, so both see the same machine load.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from itertools import repeat
from typing import Any

import cra
import cra.fast
import pytest
from conftest import QUICK, Report, flush_thread_ids
from resolve_fixtures import (
    AGENT,
    BLOCK_CALLS,
    EVENTS_PER_RESOLVE,
    GOAL,
    PERCENTILE_CALLS,
    ROUNDS,
    WARMUP_CALLS,
    WORKED_ACTIONS,
    Samples,
    load_now,
    median_of,
    memory_for,
    new_flush_thread,
    new_ids,
    percentile_loop,
    report_tight_loop,
    resolve_request,
    runtime_with_session,
    samples_info,
    samples_rows,
    show,
    tight_loop,
)

RESOLVE_GOALS = {"p50": "<= 3,000 ns", "p99": "<= 10,000 ns"}
FAST_GOALS = {"p50": "<= 2,000 ns"}
#: Calls per round (iterations) and rounds of the tight-loop benches.
LOOP_CALLS = 500 if QUICK else 10_000
LOOP_ROUNDS = 2 if QUICK else 5
#: Calls per round of each contender in the side-by-side bench.
SIDE_CRA_CALLS = 1_000 if QUICK else 20_000
SIDE_CEDAR_CALLS = 50 if QUICK else 3_000
HEADER = ["ns per call", "min", "p50", "p90", "p99", "p99.9", "max"]


def _check_worked_example(res: Any) -> None:
    """The resolution is the worked example's (so the figures are about it)."""
    allowed = res.allowed_action_ids
    allowed = allowed() if callable(allowed) else allowed
    denied = res.denied_action_ids
    denied = denied() if callable(denied) else denied
    assert list(allowed) == list(WORKED_ACTIONS[:4])
    assert list(denied) == ["resource.delete"]


def _dict_round(n: int) -> Samples:
    """One round of `rt.resolve(dict)` on a fresh runtime: n timed calls."""
    total = n + WARMUP_CALLS
    rt, sid = runtime_with_session(memory_limit=memory_for(EVENTS_PER_RESOLVE * total))
    try:
        req = resolve_request(rt, sid)
        ids = new_ids(total)
        resolve = rt.resolve
        for i in range(n, total):
            req["request_id"] = ids[i]
            res = resolve(req)
        _check_worked_example(res)
        rt.flush()

        def arg_at(i: int, req: dict[str, Any] = req, ids: list[str] = ids) -> dict[str, Any]:
            req["request_id"] = ids[i]
            return req

        samples = percentile_loop(resolve, arg_at, n, between=rt.flush)
        assert rt.flush(timeout=120)
        stats = rt.stats()
    finally:
        rt.close()
    assert stats["written"] == 1 + EVENTS_PER_RESOLVE * total, stats
    assert stats["dropped"] == 0
    return samples


def _fast_round(n: int) -> Samples:
    """One round of `cra.fast.resolver(rt, sid).resolve(goal)`: n timed calls."""
    total = n + WARMUP_CALLS
    rt, sid = runtime_with_session(memory_limit=memory_for(EVENTS_PER_RESOLVE * total))
    try:
        resolver = cra.fast.resolver(rt, sid)
        for _ in repeat(None, WARMUP_CALLS):
            res = resolver.resolve(GOAL)
        _check_worked_example(res)
        rt.flush()
        samples = percentile_loop(resolver.resolve, lambda i: GOAL, n, between=rt.flush)
        assert rt.flush(timeout=120)
        stats = rt.stats()
    finally:
        rt.close()
    assert stats["written"] == 1 + EVENTS_PER_RESOLVE * total, stats
    assert stats["dropped"] == 0
    return samples


def _run_rounds(benchmark: Any, one_round: Callable[[int], Samples], n: int) -> list[Samples]:
    rounds: list[Samples] = []
    benchmark.pedantic(
        lambda: rounds.extend(one_round(n) for _ in range(ROUNDS)),
        rounds=1,
        iterations=1,
        warmup_rounds=0,
    )
    return rounds


def _latency(
    benchmark: Any,
    report: Report,
    capsys: Any,
    section: str,
    rounds: list[Samples],
    goals: dict[str, str],
    load: tuple[float, float],
) -> None:
    for key in ("p50", "p99", "p99.9"):
        value = median_of(rounds, "corrected", key)
        report.add(section, f"{key} corrected", value, "ns", goals.get(key, ""))
    report.add(section, "timer pair p50", median_of(rounds, "timer", "p50"), "ns")
    benchmark.extra_info.update(samples_info("", rounds))
    benchmark.extra_info.update(
        goals=goals, events_per_call=EVENTS_PER_RESOLVE, load_before=load[0], load_after=load[1]
    )
    title = (
        f"{section}: median of {len(rounds)} rounds x {rounds[0].n:,} calls "
        f"(load {load[0]:.2f} -> {load[1]:.2f}; goals {goals})"
    )
    show(capsys, title, HEADER, samples_rows("resolve", rounds))


def bench_resolve_dict_percentiles(benchmark: Any, report: Report, capsys: Any) -> None:
    """rt.resolve(request_dict), one call at a time, events included."""
    load = load_now()
    rounds = _run_rounds(benchmark, _dict_round, PERCENTILE_CALLS)
    section = "rt.resolve(dict) per call"
    _latency(benchmark, report, capsys, section, rounds, RESOLVE_GOALS, (load, load_now()))


def bench_fast_resolve_percentiles(benchmark: Any, report: Report, capsys: Any) -> None:
    """cra.fast.resolver(rt, sid).resolve(goal), one call at a time, events included."""
    load = load_now()
    rounds = _run_rounds(benchmark, _fast_round, PERCENTILE_CALLS)
    section = "cra.fast resolve(goal) per call"
    _latency(benchmark, report, capsys, section, rounds, FAST_GOALS, (load, load_now()))


# -- tight loops (pytest-benchmark's own per-call figure) ---------------------


def _tight_loop(
    benchmark: Any,
    report: Report,
    capsys: Any,
    section: str,
    make: Callable[[cra.Runtime, str, list[str]], tuple[Callable[[], Any], Callable[[], Any]]],
) -> None:
    """`make(rt, sid, ids)` returns (target, bookkeeping-only target)."""
    # Warm-up, the warm-up round, the rounds, and pytest-benchmark's one
    # extra call for the result: fewer than the queue's 65,536 records.
    total = WARMUP_CALLS + LOOP_CALLS * (LOOP_ROUNDS + 1) + 1
    assert total < 65_536
    load = load_now()
    before = flush_thread_ids()
    rt, sid = runtime_with_session(memory_limit=memory_for(EVENTS_PER_RESOLVE * total))
    try:
        target, bookkeeping = make(rt, sid, new_ids(total))
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
        stats = rt.stats()
    finally:
        rt.close()
    _check_events(benchmark, stats, 1 + EVENTS_PER_RESOLVE * total)
    report_tight_loop(
        report,
        benchmark,
        capsys,
        section,
        fig,
        events_per_call=EVENTS_PER_RESOLVE,
        load=load,
        rounds=LOOP_ROUNDS,
        calls=LOOP_CALLS,
    )


def _check_events(benchmark: Any, stats: dict[str, int], expected: int) -> None:
    """Every resolve's 8 events were written (exactly `expected` in all,
    unless pytest-benchmark is disabled and ran the target only once)."""
    assert stats["dropped"] == 0
    assert stats["written"] == stats["recorded"]
    assert (stats["written"] - 1) % EVENTS_PER_RESOLVE == 0, stats
    if not getattr(benchmark, "disabled", False):
        assert stats["written"] == expected, stats


def bench_resolve_dict_loop(benchmark: Any, report: Report, capsys: Any) -> None:
    """rt.resolve(dict) back to back; the id is stored into the dict in the loop."""

    def make(rt: cra.Runtime, sid: str, ids: list[str]) -> Any:
        req = resolve_request(rt, sid)
        resolve = rt.resolve
        it = iter(ids)
        spare = iter(new_ids(LOOP_CALLS * 5))

        def target() -> Any:
            req["request_id"] = next(it)
            return resolve(req)

        def bookkeeping() -> Any:
            req["request_id"] = next(spare)
            return req

        return target, bookkeeping

    _tight_loop(benchmark, report, capsys, "rt.resolve(dict) tight loop", make)


def bench_fast_resolve_loop(benchmark: Any, report: Report, capsys: Any) -> None:
    """cra.fast resolver back to back (it mints its own ids)."""

    def make(rt: cra.Runtime, sid: str, ids: list[str]) -> Any:
        resolve = cra.fast.resolver(rt, sid).resolve

        def target() -> Any:
            return resolve(GOAL)

        def bookkeeping() -> Any:
            return GOAL

        return target, bookkeeping

    _tight_loop(benchmark, report, capsys, "cra.fast resolve(goal) tight loop", make)


# -- cedarpy side by side -----------------------------------------------------

#: The worked example's decisions in Cedar: permit read and write, forbid delete.
CEDAR_POLICIES = """
permit(principal, action in [Action::"resource.get", Action::"resource.list"], resource);
permit(principal, action in [Action::"resource.create", Action::"resource.update"], resource);
forbid(principal, action == Action::"resource.delete", resource);
"""


@pytest.fixture(scope="module")
def cedar() -> Any:
    """cedarpy with the policy set and (empty) entities parsed once, and the
    5 requests (entity references as dicts: cedarpy's fastest form)."""
    try:
        import cedarpy
    except ImportError:
        pytest.skip(
            "cedarpy is not installed (`.venv/bin/pip install cedarpy`, or the `bench` "
            "extra): the side-by-side comparison is skipped"
        )
    policies = cedarpy.PolicySet.from_str(CEDAR_POLICIES)
    entities = cedarpy.Entities.from_json_str("[]")
    requests = [
        {
            "principal": {"type": "Agent", "id": AGENT},
            "action": {"type": "Action", "id": a},
            "resource": {"type": "Atlas", "id": "org.cra.resources"},
        }
        for a in WORKED_ACTIONS
    ]
    decisions = [
        r.decision.value for r in cedarpy.is_authorized_batch(requests, policies, entities)
    ]
    assert decisions == ["Allow", "Allow", "Allow", "Allow", "Deny"]
    return cedarpy, policies, entities, requests


def _cedar_calls(cedar: Any) -> dict[str, Callable[[Any], Any]]:
    cedarpy, policies, entities, requests = cedar
    internal = cedarpy._internal.is_authorized_batch
    inner = entities._inner
    batch = cedarpy.is_authorized_batch
    single = cedarpy.is_authorized
    return {
        # The same 5 decisions as one cra resolve, through the public API.
        "cedarpy is_authorized_batch (5 actions)": lambda _: batch(requests, policies, entities),
        # The same, without cedarpy's Python wrapper (raw JSON strings back).
        "cedarpy _internal batch (5 actions)": lambda _: internal(
            requests, policies, inner, None, False
        ),
        # One decision: a fifth of the work of a resolve.
        "cedarpy is_authorized (1 action)": lambda _: single(requests[0], policies, entities),
    }


def bench_cedar_batch_loop(benchmark: Any, report: Report, cedar: Any) -> None:
    """cedarpy deciding the worked example's 5 actions back to back (public API)."""
    cedarpy, policies, entities, requests = cedar
    batch = cedarpy.is_authorized_batch
    load = load_now()
    iterations = 20 if QUICK else 500
    benchmark.pedantic(
        lambda: batch(requests, policies, entities),
        rounds=LOOP_ROUNDS,
        iterations=iterations,
        warmup_rounds=1,
    )
    stats = getattr(benchmark, "stats", None)
    per_call = float(stats.stats.median) * 1e9 if stats else float("nan")
    report.add(
        "cedarpy batch of 5 tight loop", "per call (pytest-benchmark median)", per_call, "ns"
    )
    benchmark.extra_info.update(
        per_call_median_ns=per_call, load_before=load, load_after=load_now()
    )


def bench_cedar_side_by_side(benchmark: Any, report: Report, capsys: Any, cedar: Any) -> None:
    """cra and cedarpy timed the same way, interleaved round by round."""
    contenders = _cedar_calls(cedar)
    results: dict[str, list[Samples]] = {
        "cra rt.resolve(dict)": [],
        "cra.fast resolve(goal)": [],
        **{name: [] for name in contenders},
    }
    load = load_now()

    def run() -> None:
        for _ in range(ROUNDS):
            results["cra rt.resolve(dict)"].append(_dict_round(SIDE_CRA_CALLS))
            results["cra.fast resolve(goal)"].append(_fast_round(SIDE_CRA_CALLS))
            for name, call in contenders.items():
                for _ in repeat(None, 20):
                    call(None)
                results[name].append(
                    percentile_loop(call, lambda i: None, SIDE_CEDAR_CALLS, block=BLOCK_CALLS)
                )

    benchmark.pedantic(run, rounds=1, iterations=1, warmup_rounds=0)
    load_after = load_now()
    rows = []
    for name, rounds in results.items():
        p50 = median_of(rounds, "corrected", "p50")
        p99 = median_of(rounds, "corrected", "p99")
        rows.append([name, rounds[0].n, f"{p50:,.0f}", f"{p99:,.0f}"])
        benchmark.extra_info.update(samples_info(f"{name}: ", rounds))
    # Ratios per round (both timed in the same round), then the median.
    ratio_rows = []
    for cra_name in ("cra rt.resolve(dict)", "cra.fast resolve(goal)"):
        for cedar_name in contenders:
            ratios = [
                c.corrected["p50"] / max(1, m.corrected["p50"])
                for c, m in zip(results[cedar_name], results[cra_name])
            ]
            ratio = statistics.median(ratios)
            ratio_rows.append([f"{cedar_name} / {cra_name}", f"{ratio:,.1f}x"])
            benchmark.extra_info[f"ratio p50 {cedar_name} / {cra_name}"] = ratio
            goal = ">= 5x" if "batch (5" in cedar_name and "dict" in cra_name else ""
            report.add("cedarpy / cra (p50 ratio)", f"{cedar_name} / {cra_name}", ratio, "x", goal)
    benchmark.extra_info.update(load_before=load, load_after=load_after)
    show(
        capsys,
        f"side by side, median of {ROUNDS} interleaved rounds (corrected ns; "
        f"load {load:.2f} -> {load_after:.2f})",
        ["contender", "calls/round", "p50", "p99"],
        rows,
    )
    show(capsys, "p50 ratios (median over rounds)", ["ratio", "value"], ratio_rows)
