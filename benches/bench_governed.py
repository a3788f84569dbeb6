"""Governed-call benchmark (issue 15): `gt.call(action_id, **parameters)`
of a session's governed tools, beside `rt.execute(request_dict)` on the
same runtime, one call at a time.

Run: `.venv/bin/python -m pytest benches/bench_governed.py -q`
(`CRA_BENCH_QUICK=1` for a smoke run).

`gt.call` does everything `rt.execute` does (every check, the executor, 4
events) and also builds the request itself: a fresh request id and
timestamp, the session's resolution (kept until it expires), the
parameters from the keyword arguments. Each timed call goes through a
one-line function (`call(arg)`), as the execute loop calls `execute(req)`;
its cost is in the figure.
"""

from __future__ import annotations

from typing import Any

from bench_execute import ACTION, EVENTS_BEFORE, EVENTS_PER_EXECUTE, PARAMETERS, _execute_setup
from conftest import Report
from resolve_fixtures import (
    PERCENTILE_CALLS,
    ROUNDS,
    WARMUP_CALLS,
    Samples,
    load_now,
    median_of,
    percentile_loop,
    samples_info,
    samples_rows,
    show,
)

GOALS = {"p50": "<= 3,000 ns"}
HEADER = ["ns per call", "min", "p50", "p90", "p99", "p99.9", "max"]
SECTION = "gt.call(action, **params) per call"


def _governed_round(n: int) -> Samples:
    total = n + WARMUP_CALLS
    rt, sid, _ = _execute_setup(EVENTS_BEFORE + EVENTS_PER_EXECUTE * total + 16)
    try:
        gt = rt.governed(sid)
        call = gt.call
        for _ in range(WARMUP_CALLS):
            out = call(ACTION, resource_id="r-1")
        assert out == PARAMETERS, out
        rt.flush()

        def one(_: Any) -> Any:
            return call(ACTION, resource_id="r-1")

        samples = percentile_loop(one, lambda i: None, n, between=rt.flush)
        assert rt.flush(timeout=120)
        ran = len(rt.events(sid, event_type="action.executed"))
        assert ran == total, (ran, total)
    finally:
        rt.close()
    return samples


def bench_governed_call_percentiles(benchmark: Any, report: Report, capsys: Any) -> None:
    """gt.call one call at a time, trivial executor, events included."""
    load = load_now()
    rounds: list[Samples] = []
    benchmark.pedantic(
        lambda: rounds.extend(_governed_round(PERCENTILE_CALLS) for _ in range(ROUNDS)),
        rounds=1,
        iterations=1,
        warmup_rounds=0,
    )
    load_after = load_now()
    for key in ("p50", "p99", "p99.9"):
        value = median_of(rounds, "corrected", key)
        report.add(SECTION, f"{key} corrected", value, "ns", GOALS.get(key, ""))
    benchmark.extra_info.update(samples_info("", rounds))
    benchmark.extra_info.update(goals=GOALS, load_before=load, load_after=load_after)
    show(
        capsys,
        f"{SECTION}: median of {len(rounds)} rounds x {rounds[0].n:,} calls "
        f"(load {load:.2f} -> {load_after:.2f}; goals {GOALS})",
        HEADER,
        samples_rows("gt.call", rounds),
    )
