"""Resolver scale benchmarks (issue 3): an atlas of 10,000 actions, 2,000
policies and 100 capabilities built in Python (exact ids, prefixes
`svcS.*`, suffixes `*.delete`, globs `svcS.*.create`, conditions), its load
time, a resolve that selects 10 actions through `required_capabilities`,
a full resolve over 1,000 actions, and resolve time against atlas size.

Run: `.venv/bin/python -m pytest benches/bench_scale.py -q`
(`CRA_BENCH_QUICK=1` for a smoke run of a few seconds).

A full resolve records one `policy.evaluated` event per action; the flush
thread renders and hashes them on the other core. Full resolves are timed
one at a time with an untimed flush() before each, so a resolve never
competes with the sealing of the previous one; that sealing time ("seal")
is reported on its own.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cra
import cra.fast
import pytest
from conftest import QUICK, Report
from resolve_fixtures import (
    ROUNDS,
    TEN_ACTION_CAPABILITY,
    Samples,
    load_now,
    median_of,
    memory_for,
    new_ids,
    percentile_loop,
    resolve_request,
    runtime_with_session,
    samples_info,
    samples_rows,
    scale_manifest,
    show,
    write_manifest,
)

BIG_ACTIONS, BIG_POLICIES, BIG_CAPABILITIES = 10_000, 2_000, 100
LOAD_GOAL_MS = 200.0
CAPABILITY_GOAL_NS = 10_000.0
#: Loads timed per way of loading (each into a fresh runtime).
LOAD_ROUNDS = 1 if QUICK else 7
#: Individually timed capability-filtered resolves per round.
CAPABILITY_CALLS = 1_000 if QUICK else 50_000
#: Individually timed full resolves of the 1,000-action atlas.
FULL_CALLS = 5 if QUICK else 300
#: Atlas sizes of the table, and full resolves timed per size.
TABLE_SIZES = (10, 100, 1_000, 10_000)
GOAL = "Manage the services"
HEADER = ["ns per call", "min", "p50", "p90", "p99", "p99.9", "max"]


def _table_calls(size: int) -> int:
    if QUICK:
        return 3
    return max(20, min(2_000, 400_000 // size))


@pytest.fixture(scope="module")
def big(tmp_path_factory: Any) -> tuple[dict[str, Any], Path]:
    """The 10,000-action manifest, as a dict and as an atlas directory."""
    manifest = scale_manifest(BIG_ACTIONS, BIG_POLICIES, BIG_CAPABILITIES)
    assert len(manifest["actions"]) == BIG_ACTIONS
    assert len(manifest["policies"]) == BIG_POLICIES
    assert len(manifest["capabilities"]) == BIG_CAPABILITIES
    path = write_manifest(manifest, tmp_path_factory.mktemp("scale") / "big")
    return manifest, path


def _events_of(res: Any) -> int:
    """Events a resolve records: request, one per candidate action, one per
    context block, completion."""
    return 2 + len(res.allowed_action_ids) + len(res.denied_action_ids) + len(res.context_blocks)


def _time_loads(
    benchmark: Any, load: Callable[[cra.Runtime], Any], rounds: int
) -> tuple[list[float], Any]:
    """Times `load(rt)` into a fresh runtime per round; seconds of each."""
    seconds: list[float] = []
    infos: list[Any] = []

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (cra.Runtime(),), {}

    def target(rt: cra.Runtime) -> None:
        t0 = time.perf_counter()
        info = load(rt)
        seconds.append(time.perf_counter() - t0)
        infos.append(info)
        rt.close()

    warmup = 0 if QUICK else 1
    benchmark.pedantic(target, setup=setup, rounds=rounds, warmup_rounds=warmup)
    # pytest-benchmark runs the warm-up round through `target` too.
    return seconds[warmup:], infos[-1]


def bench_scale_load_directory(
    benchmark: Any, report: Report, capsys: Any, big: tuple[dict[str, Any], Path]
) -> None:
    """Load of the 10,000-action atlas from its directory (read, parse,
    validate, compile patterns, schemas and indexes)."""
    _, path = big
    load = load_now()
    seconds, info = _time_loads(benchmark, lambda rt: rt.load_atlas(path), LOAD_ROUNDS)
    _report_load(benchmark, report, capsys, "from a directory", seconds, info, load, path)


def bench_scale_load_dict(
    benchmark: Any, report: Report, capsys: Any, big: tuple[dict[str, Any], Path]
) -> None:
    """Load of the 10,000-action atlas from a Python dict (the dict is
    converted in the call)."""
    manifest, path = big
    load = load_now()
    seconds, info = _time_loads(benchmark, lambda rt: rt.load_atlas(manifest), LOAD_ROUNDS)
    _report_load(benchmark, report, capsys, "from a dict", seconds, info, load, path)


def _report_load(
    benchmark: Any,
    report: Report,
    capsys: Any,
    how: str,
    seconds: list[float],
    info: Any,
    load: float,
    path: Path,
) -> None:
    assert len(info.actions) == BIG_ACTIONS and len(info.policies) == BIG_POLICIES
    ms = sorted(s * 1e3 for s in seconds)
    median = statistics.median(ms)
    size_mb = (path / "atlas.json").stat().st_size / 1e6
    load_after = load_now()
    section = "atlas load, 10k actions / 2k policies / 100 capabilities"
    report.add(section, f"{how}, median", median, "ms", f"<= {LOAD_GOAL_MS:.0f} ms")
    benchmark.extra_info.update(
        load_ms=ms,
        median_ms=median,
        goal_ms=LOAD_GOAL_MS,
        manifest_mb=size_mb,
        load_before=load,
        load_after=load_after,
    )
    show(
        capsys,
        f"load {how}: {len(ms)} loads of a {size_mb:.1f} MB manifest "
        f"(load {load:.2f} -> {load_after:.2f}; goal <= {LOAD_GOAL_MS:.0f} ms)",
        ["ms", "min", "median", "max"],
        [["load_atlas", f"{ms[0]:.1f}", f"{median:.1f}", f"{ms[-1]:.1f}"]],
    )


# -- a resolve that selects 10 actions ---------------------------------------


def _capability_round(manifest: dict[str, Any], n: int, fast: bool) -> tuple[Samples, int]:
    rt, sid = runtime_with_session((), memory_limit=memory_for(14 * (n + 200)))
    try:
        rt.load_atlas(manifest)
        caps = [TEN_ACTION_CAPABILITY]
        req = resolve_request(rt, sid, GOAL, required_capabilities=caps)
        ids = new_ids(n + 200)
        req["request_id"] = ids[n]
        first = rt.resolve(req)
        assert len(first.allowed_action_ids) + len(first.denied_action_ids) == 10
        if fast:
            resolve = cra.fast.resolver(rt, sid).resolve

            def call(goal: str) -> Any:
                return resolve(goal, required_capabilities=caps)

            def arg_at(i: int) -> Any:
                return GOAL

        else:
            call = rt.resolve

            def arg_at(i: int, req: dict[str, Any] = req, ids: list[str] = ids) -> Any:
                req["request_id"] = ids[i]
                return req

        for i in range(n + 1, n + 200):
            call(arg_at(i))
        rt.flush()
        samples = percentile_loop(call, arg_at, n, between=rt.flush)
        assert rt.flush(timeout=120)
        stats = rt.stats()
    finally:
        rt.close()
    assert stats["dropped"] == 0 and stats["written"] == stats["recorded"]
    return samples, _events_of(first)


def bench_scale_capability_resolve(
    benchmark: Any, report: Report, capsys: Any, big: tuple[dict[str, Any], Path]
) -> None:
    """rt.resolve with `required_capabilities` selecting 10 of 10,000 actions."""
    manifest, _ = big
    load = load_now()
    dict_rounds: list[Samples] = []
    fast_rounds: list[Samples] = []
    events: list[int] = []

    def run() -> None:
        for _ in range(ROUNDS):
            s, e = _capability_round(manifest, CAPABILITY_CALLS, fast=False)
            dict_rounds.append(s)
            events.append(e)
            fast_rounds.append(_capability_round(manifest, CAPABILITY_CALLS, fast=True)[0])

    benchmark.pedantic(run, rounds=1, iterations=1, warmup_rounds=0)
    load_after = load_now()
    section = "resolve of 10 actions (required_capabilities) in a 10k atlas"
    p50 = median_of(dict_rounds, "corrected", "p50")
    report.add(section, "rt.resolve(dict) p50 corrected", p50, "ns", "<= 10,000 ns")
    report.add(
        section, "rt.resolve(dict) p99 corrected", median_of(dict_rounds, "corrected", "p99"), "ns"
    )
    report.add(section, "cra.fast p50 corrected", median_of(fast_rounds, "corrected", "p50"), "ns")
    benchmark.extra_info.update(samples_info("dict ", dict_rounds))
    benchmark.extra_info.update(samples_info("fast ", fast_rounds))
    benchmark.extra_info.update(
        events_per_resolve=events[0],
        goal_p50_ns=CAPABILITY_GOAL_NS,
        load_before=load,
        load_after=load_after,
    )
    rows = samples_rows("rt.resolve(dict)", dict_rounds) + samples_rows("cra.fast", fast_rounds)
    show(
        capsys,
        f"{section}: median of {len(dict_rounds)} rounds x {dict_rounds[0].n:,} calls, "
        f"{events[0]} events each (load {load:.2f} -> {load_after:.2f}; goal p50 <= 10,000 ns)",
        HEADER,
        rows,
    )


# -- full resolves -------------------------------------------------------------


def _full_resolves(manifest: dict[str, Any], n: int) -> dict[str, Any]:
    """n full resolves (every action), one at a time with a flush before
    each; the time of each flush after a resolve is its sealing time."""
    # A full resolve of every action is what this measures: lift the
    # per-resolve bound (default 1,000 candidate actions) to the atlas size.
    rt, sid = runtime_with_session(
        (),
        memory_limit=memory_for((n + 2) * (len(manifest["actions"]) + 3)),
        atlas_limits={"max_candidate_actions": len(manifest["actions"])},
    )
    try:
        t0 = time.perf_counter()
        rt.load_atlas(manifest)
        load_ms = (time.perf_counter() - t0) * 1e3
        req = resolve_request(rt, sid, GOAL)
        ids = new_ids(n + 2)
        req["request_id"] = ids[n]
        first = rt.resolve(req)
        events = _events_of(first)
        seal: list[float] = []

        def between() -> None:
            t = time.perf_counter()
            rt.flush()
            seal.append(time.perf_counter() - t)

        def arg_at(i: int) -> Any:
            req["request_id"] = ids[i]
            return req

        samples = percentile_loop(rt.resolve, arg_at, n, between=between, block=1)
        between()
        stats = rt.stats()
    finally:
        rt.close()
    assert stats["dropped"] == 0 and stats["written"] == stats["recorded"]
    assert stats["written"] == 1 + events * (n + 1), stats
    actions = len(first.allowed_action_ids) + len(first.denied_action_ids)
    assert actions == len(manifest["actions"])
    return {
        "samples": samples,
        "actions": actions,
        "events": events,
        "seal_ms": statistics.median(seal) * 1e3,
        "load_ms": load_ms,
    }


def bench_scale_full_resolve_1000(benchmark: Any, report: Report, capsys: Any) -> None:
    """A full resolve over 1,000 actions (200 policies, 10 capabilities)."""
    manifest = scale_manifest(1_000)
    load = load_now()
    out = benchmark.pedantic(
        lambda: _full_resolves(manifest, FULL_CALLS), rounds=1, iterations=1, warmup_rounds=0
    )
    load_after = load_now()
    s: Samples = out["samples"]
    p50 = s.corrected["p50"]
    section = "full resolve over 1,000 actions"
    report.add(section, "p50 corrected", p50 / 1e3, "us")
    report.add(section, "p50 per action", p50 / out["actions"], "ns")
    report.add(section, "sealing its events (flush), median", out["seal_ms"], "ms")
    benchmark.extra_info.update(
        {f"corrected_{k}_ns": v for k, v in s.corrected.items()},
        timer_p50_ns=s.timer["p50"],
        per_action_p50_ns=p50 / out["actions"],
        events_per_resolve=out["events"],
        seal_median_ms=out["seal_ms"],
        load_before=load,
        load_after=load_after,
    )
    show(
        capsys,
        f"{section}: {s.n} resolves, {out['events']} events each "
        f"(load {load:.2f} -> {load_after:.2f})",
        ["", "p50", "p99", "per action (p50)", "seal (median)"],
        [
            [
                "rt.resolve(dict)",
                f"{p50 / 1e3:,.1f} us",
                f"{s.corrected['p99'] / 1e3:,.1f} us",
                f"{p50 / out['actions']:,.0f} ns",
                f"{out['seal_ms']:,.2f} ms",
            ]
        ],
    )


def bench_scale_table(benchmark: Any, report: Report, capsys: Any) -> None:
    """Resolve time against atlas size: a full resolve and a resolve of the
    10 actions of one capability, for 10, 100, 1,000 and 10,000 actions."""
    load = load_now()
    rows: list[list[str]] = []
    table: list[dict[str, Any]] = []

    def run() -> None:
        for size in TABLE_SIZES:
            policies = BIG_POLICIES if size == BIG_ACTIONS else None
            capabilities = BIG_CAPABILITIES if size == BIG_ACTIONS else None
            manifest = scale_manifest(size, policies, capabilities)
            full = _full_resolves(manifest, _table_calls(size))
            cap, _ = _capability_round(manifest, 200 if QUICK else 10_000, fast=False)
            s: Samples = full["samples"]
            entry = {
                "actions": size,
                "policies": len(manifest["policies"]),
                "capabilities": len(manifest["capabilities"]),
                "load_ms": full["load_ms"],
                "full_resolves_timed": s.n,
                "full_p50_us": s.corrected["p50"] / 1e3,
                "full_p50_per_action_ns": s.corrected["p50"] / full["actions"],
                "seal_ms": full["seal_ms"],
                "cap10_p50_us": cap.corrected["p50"] / 1e3,
                "cap10_p99_us": cap.corrected["p99"] / 1e3,
            }
            table.append(entry)

    benchmark.pedantic(run, rounds=1, iterations=1, warmup_rounds=0)
    load_after = load_now()
    for e in table:
        rows.append(
            [
                f"{e['actions']:,}",
                f"{e['policies']:,}",
                f"{e['load_ms']:,.1f}",
                f"{e['full_p50_us']:,.1f}",
                f"{e['full_p50_per_action_ns']:,.0f}",
                f"{e['seal_ms']:,.2f}",
                f"{e['cap10_p50_us']:,.2f}",
                f"{e['cap10_p99_us']:,.2f}",
            ]
        )
        section = "resolve time vs atlas size"
        report.add(section, f"{e['actions']:>6,} actions: full p50", e["full_p50_us"], "us")
        report.add(section, f"{e['actions']:>6,} actions: 10-action p50", e["cap10_p50_us"], "us")
    benchmark.extra_info.update(table=table, load_before=load, load_after=load_after)
    show(
        capsys,
        f"resolve time vs atlas size (rt.resolve(dict), corrected; load {load:.2f} -> {load_after:.2f})",
        [
            "actions",
            "policies",
            "load ms",
            "full p50 us",
            "ns/action",
            "seal ms",
            "10-action p50 us",
            "10-action p99 us",
        ],
        rows,
    )
