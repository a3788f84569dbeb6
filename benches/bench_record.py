"""TRACE core benchmarks from Python (issue 2): record() latency next to an
OpenTelemetry span, chain verification, and sealing on the flush thread.

Run: `.venv/bin/python -m pytest benches -q` (`CRA_BENCH_QUICK=1` for a smoke run).

Three regimes of record() are measured, because they answer different
questions:

* back to back with room in the queue (the percentile bench and the burst
  loop): calls go in blocks of BLOCK_CALLS (< the 65,536-record queue), and
  an untimed flush() between blocks empties the queue. The flush thread seals
  on the other core at the same time.
* spaced out (SPACED_GAPS_NS of busy work between calls), as with an agent
  that records now and then: the flush thread keeps up, is often idle when a
  record arrives, and the push has to wake it. A control call timed next to
  each record shows what the machine alone does to the tail.
* sustained (back-to-back loop of LOOP_CALLS): the queue fills and the
  `block` policy makes the caller wait. The figure is then the flush thread's
  throughput, not record()'s cost.
"""

from __future__ import annotations

import statistics
import time
from array import array
from collections.abc import Callable
from itertools import repeat
from typing import Any

import cra
import pytest
from conftest import (
    EVENT_TYPE,
    LOOP_CALLS,
    PAYLOAD,
    QUICK,
    RECORD_CALLS,
    ROUNDS,
    SEAL_EVENTS,
    VERIFY_EVENTS,
    Report,
    control,
    flush_thread_ids,
    summarise,
    thread_cpu_ns,
    timed_empty_and_control,
)

#: Calls per timed block: fewer than the default queue capacity (65,536).
BLOCK_CALLS = 50_000
WARMUP_CALLS = 20_000
#: Bursts of BLOCK_CALLS timed by the burst benches.
BURSTS = 4 if QUICK else 20
#: OTel spans cost ~10x a record(); its bursts are shorter.
OTEL_BURST_CALLS = 10_000 if QUICK else 20_000
#: Nanoseconds above which a call counts as slow in the percentile benches.
SLOW_NS = 5_000
#: The spaced-out percentile benches: calls, and the busy work between them
#: (2 us: the flush thread just keeps up; 20 us: it is idle between records).
SPACED_CALLS = 10_000 if QUICK else 100_000
SPACED_GAPS_NS = (2_000, 20_000)

Timed = Callable[[Any, Any, Any, int, int], None]


def _percentiles(
    timed: Timed, n: int, between: Callable[[], Any], interleaved: bool
) -> tuple[dict[str, int], dict[str, int], dict[str, int], int, int]:
    """Times `n` calls one by one in blocks of BLOCK_CALLS, `between()`
    running untimed before each block. Timer pairs and control calls are
    timed by `timed` itself when `interleaved`, else in a block of their own
    after each block of calls (so they do not change the pace of the calls)."""
    calls = array("q", bytes(8 * n))
    empty = array("q", bytes(8 * n))
    ctl = array("q", bytes(8 * n))
    for start in range(0, n, BLOCK_CALLS):
        stop = min(n, start + BLOCK_CALLS)
        between()
        timed(calls, empty, ctl, start, stop)
        if not interleaved:
            timed_empty_and_control(empty, ctl, start, stop)
    slow = sum(1 for d in calls if d > SLOW_NS)
    slow_ctl = sum(1 for d in ctl if d > SLOW_NS)
    return summarise(calls), summarise(empty), summarise(ctl), slow, slow_ctl


def _latency_report(
    benchmark: Any,
    report: Report,
    section: str,
    measured: tuple[dict[str, int], dict[str, int], dict[str, int], int, int],
    goals: dict[str, str],
) -> dict[str, int]:
    """Adds raw, timer-pair, corrected (raw - median timer pair) and control
    percentiles and the counts of slow calls."""
    raw, timer, ctl, slow, slow_ctl = measured
    corrected = {k: max(0, v - timer["p50"]) for k, v in raw.items()}
    keys = ("p50", "p99", "p99.99")
    for key in keys:
        report.add(section, f"{key} raw", raw[key], "ns")
    for key in keys:
        report.add(section, f"{key} timer pair", timer[key], "ns")
    for key in keys:
        report.add(section, f"{key} corrected", corrected[key], "ns", goals.get(key, ""))
    for key in keys:
        report.add(section, f"{key} control call (raw)", ctl[key], "ns")
    report.add(section, "calls > 5 us", slow, "calls")
    report.add(section, "control calls > 5 us", slow_ctl, "calls")
    benchmark.extra_info.update(
        {
            **{f"raw_{k}_ns": v for k, v in raw.items()},
            **{f"timer_{k}_ns": v for k, v in timer.items()},
            **{f"corrected_{k}_ns": v for k, v in corrected.items()},
            **{f"control_{k}_ns": v for k, v in ctl.items()},
            "slow_calls": slow,
            "slow_control_calls": slow_ctl,
        }
    )
    return corrected


def _run_once(benchmark: Any, fn: Callable[[], Any]) -> Any:
    """Runs `fn` once under pytest-benchmark (it also works when disabled)."""
    return benchmark.pedantic(fn, rounds=1, iterations=1, warmup_rounds=0)


def _median_rounds(benchmark: Any, fn: Callable[..., Any], **pedantic: Any) -> tuple[Any, float]:
    """Runs `fn` for several rounds; returns its last result and the median seconds."""
    seconds: list[float] = []

    def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        seconds.append(time.perf_counter() - t0)
        return out

    result = benchmark.pedantic(timed, **pedantic)
    return result, statistics.median(seconds)


def _runtime(**options: Any) -> tuple[cra.Runtime, str]:
    rt = cra.Runtime(**options)
    sid = rt.create_session(agent_id="bench", goal="benchmark")
    return rt, sid


# -- record() ---------------------------------------------------------------

RECORD_GOALS = {"p50": "<= 300 ns", "p99": "<= 1,000 ns", "p99.99": "<= 5,000 ns"}


def bench_record_percentiles(benchmark: Any, report: Report) -> None:
    """record() one call at a time, back to back, flush thread running,
    in-memory store."""
    # Room for every event, so that no eviction happens while we measure.
    rt, sid = _runtime(memory_limit=RECORD_CALLS + WARMUP_CALLS + 10_000)
    record = rt.record

    def timed(
        calls: Any,
        empty: Any,
        ctl: Any,
        start: int,
        stop: int,
        pc: Callable[[], int] = time.perf_counter_ns,
    ) -> None:
        for i in range(start, stop):
            t0 = pc()
            record(sid, EVENT_TYPE, PAYLOAD)
            calls[i] = pc() - t0

    for _ in repeat(None, WARMUP_CALLS):
        record(sid, EVENT_TYPE, PAYLOAD)
    try:
        measured = _run_once(
            benchmark, lambda: _percentiles(timed, RECORD_CALLS, rt.flush, interleaved=False)
        )
        assert rt.flush(timeout=120)
        stats = rt.stats()
    finally:
        rt.close()
    assert stats["written"] == RECORD_CALLS + WARMUP_CALLS + 1
    assert stats["dropped"] == 0
    section = "record() per call, back to back"
    _latency_report(benchmark, report, section, measured, RECORD_GOALS)
    report.add(section, "calls timed", RECORD_CALLS, "calls")
    report.add(section, "queue high-water", stats["high_water_mark"], "records")
    benchmark.extra_info.update(calls=RECORD_CALLS, high_water_mark=stats["high_water_mark"])


@pytest.mark.parametrize("gap_ns", SPACED_GAPS_NS)
def bench_record_percentiles_spaced(benchmark: Any, report: Report, gap_ns: int) -> None:
    """record() one call at a time with `gap_ns` of busy work between calls,
    as an agent that records now and then: the flush thread keeps up, and is
    often idle when a record arrives."""
    rt, sid = _runtime(memory_limit=SPACED_CALLS + WARMUP_CALLS + 10_000)
    record = rt.record

    def timed(
        calls: Any,
        empty: Any,
        ctl: Any,
        start: int,
        stop: int,
        pc: Callable[[], int] = time.perf_counter_ns,
        control: Callable[[], Any] = control,
        gap: int = gap_ns,
    ) -> None:
        for i in range(start, stop):
            until = pc() + gap
            while pc() < until:
                pass
            t0 = pc()
            record(sid, EVENT_TYPE, PAYLOAD)
            t1 = pc()
            t2 = pc()
            t3 = pc()
            control()
            t4 = pc()
            calls[i] = t1 - t0
            empty[i] = t3 - t2
            ctl[i] = t4 - t3

    for _ in repeat(None, WARMUP_CALLS):
        record(sid, EVENT_TYPE, PAYLOAD)
    try:
        measured = _run_once(
            benchmark, lambda: _percentiles(timed, SPACED_CALLS, rt.flush, interleaved=True)
        )
        assert rt.flush(timeout=120)
        stats = rt.stats()
    finally:
        rt.close()
    assert stats["written"] == SPACED_CALLS + WARMUP_CALLS + 1
    section = f"record() per call, spaced {gap_ns / 1000:g} us apart"
    _latency_report(benchmark, report, section, measured, RECORD_GOALS)
    report.add(section, "calls timed", SPACED_CALLS, "calls")
    benchmark.extra_info.update(calls=SPACED_CALLS, gap_ns=gap_ns)


def bench_record_burst(benchmark: Any, report: Report) -> None:
    """Tight loops of BLOCK_CALLS record() calls (the queue never fills):
    total time / calls, median over the bursts."""
    rt, sid = _runtime(memory_limit=BURSTS * BLOCK_CALLS + WARMUP_CALLS + 10_000)
    record = rt.record
    for _ in repeat(None, WARMUP_CALLS):
        record(sid, EVENT_TYPE, PAYLOAD)

    def setup() -> None:
        rt.flush()  # untimed: empty the queue before each burst

    def burst() -> None:
        for _ in repeat(None, BLOCK_CALLS):
            record(sid, EVENT_TYPE, PAYLOAD)

    try:
        _, seconds = _median_rounds(benchmark, burst, setup=setup, rounds=BURSTS)
        assert rt.flush(timeout=120)
        stats = rt.stats()
    finally:
        rt.close()
    assert stats["high_water_mark"] < 65_536, "the queue filled: not a burst any more"
    per_call = seconds / BLOCK_CALLS * 1e9
    report.add("record() tight loop", "burst of 50k, per call", per_call, "ns")
    benchmark.extra_info.update(calls_per_burst=BLOCK_CALLS, per_call_ns=per_call)


def bench_record_sustained(benchmark: Any, report: Report) -> None:
    """A back-to-back loop of LOOP_CALLS record() calls: the queue fills and
    the caller runs at the flush thread's pace (policy `block`)."""
    n = LOOP_CALLS

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        rt, sid = _runtime(memory_limit=n + WARMUP_CALLS + 10_000)
        for _ in repeat(None, WARMUP_CALLS):
            rt.record(sid, EVENT_TYPE, PAYLOAD)
        assert rt.flush(timeout=60)
        return (rt, sid), {}

    hwm: list[int] = []

    def loop(rt: cra.Runtime, sid: str) -> None:
        record = rt.record
        for _ in repeat(None, n):
            record(sid, EVENT_TYPE, PAYLOAD)

    def teardown(rt: cra.Runtime, sid: str) -> None:
        assert rt.flush(timeout=120)
        stats = rt.stats()
        assert stats["written"] == n + WARMUP_CALLS + 1
        hwm.append(stats["high_water_mark"])
        rt.close()

    _, seconds = _median_rounds(
        benchmark, loop, setup=setup, teardown=teardown, rounds=ROUNDS, warmup_rounds=0
    )
    per_call = seconds / n * 1e9
    label = f"sustained {n // 1000}k, per call"
    report.add("record() tight loop", label, per_call, "ns")
    report.add("record() tight loop", "sustained: queue high-water", max(hwm), "records")
    benchmark.extra_info.update(calls_per_round=n, per_call_ns=per_call, high_water_mark=max(hwm))


# -- OpenTelemetry side by side ---------------------------------------------


@pytest.fixture(scope="module")
def otel() -> Any:
    """An OTel SDK tracer with a BatchSpanProcessor and a no-op exporter."""
    trace = pytest.importorskip("opentelemetry.sdk.trace")
    export = pytest.importorskip("opentelemetry.sdk.trace.export")

    class NoOpExporter(export.SpanExporter):  # type: ignore[misc]
        def export(self, spans: Any) -> Any:
            return export.SpanExportResult.SUCCESS

        def shutdown(self) -> None:
            pass

    provider = trace.TracerProvider()
    provider.add_span_processor(export.BatchSpanProcessor(NoOpExporter()))
    yield provider, provider.get_tracer("cra.bench")
    provider.shutdown()


def _otel_ratio(report: Report, name: str, otel: float, cra_key: tuple[str, str]) -> None:
    mine = report.get(*cra_key)
    if mine:
        report.add("OTel / cra", name, otel / mine, "x")


def bench_otel_span_percentiles(benchmark: Any, report: Report, otel: Any) -> None:
    """OTel SDK span start+end, one at a time, the same way as record()."""
    provider, tracer = otel
    start_span = tracer.start_span
    attrs = dict(PAYLOAD)

    def timed(
        spans: Any,
        empty: Any,
        ctl: Any,
        start: int,
        stop: int,
        pc: Callable[[], int] = time.perf_counter_ns,
    ) -> None:
        for i in range(start, stop):
            t0 = pc()
            start_span(EVENT_TYPE, attributes=attrs).end()
            spans[i] = pc() - t0

    for _ in repeat(None, WARMUP_CALLS):
        start_span(EVENT_TYPE, attributes=attrs).end()
    measured = _run_once(
        benchmark,
        lambda: _percentiles(timed, RECORD_CALLS, provider.force_flush, interleaved=False),
    )
    section = "OTel span per call"
    corrected = _latency_report(benchmark, report, section, measured, {})
    per_call = ("record() per call, back to back", "p50 corrected")
    _otel_ratio(report, "p50 corrected", corrected["p50"], per_call)
    _otel_ratio(
        report,
        "p99 corrected",
        corrected["p99"],
        ("record() per call, back to back", "p99 corrected"),
    )
    benchmark.extra_info.update(calls=RECORD_CALLS)


def bench_otel_span_burst(benchmark: Any, report: Report, otel: Any) -> None:
    """Tight loops of OTel span start+end: total time / spans."""
    provider, tracer = otel
    start_span = tracer.start_span
    attrs = dict(PAYLOAD)
    n = OTEL_BURST_CALLS

    def burst() -> None:
        for _ in repeat(None, n):
            start_span(EVENT_TYPE, attributes=attrs).end()

    def setup() -> None:
        provider.force_flush()  # untimed: export what the processor holds

    _, seconds = _median_rounds(benchmark, burst, setup=setup, rounds=BURSTS, warmup_rounds=1)
    per_call = seconds / n * 1e9
    report.add("OTel span tight loop", f"burst of {n // 1000}k, per span", per_call, "ns")
    cra_burst = ("record() tight loop", "burst of 50k, per call")
    _otel_ratio(report, "tight loop (bursts)", per_call, cra_burst)
    benchmark.extra_info.update(spans_per_burst=n, per_call_ns=per_call)


# -- verification -----------------------------------------------------------


@pytest.fixture(scope="module", params=["sha256", "blake3"])
def big_chain(request: Any, tmp_path_factory: Any) -> Any:
    """One session of VERIFY_EVENTS events, in memory and in a JSONL file."""
    path = tmp_path_factory.mktemp("trace") / f"big-{request.param}.trace.jsonl"
    rt, sid = _runtime(
        hash_algorithm=request.param, trace_file=path, memory_limit=VERIFY_EVENTS + 1_000
    )
    record = rt.record
    for _ in repeat(None, VERIFY_EVENTS - 1):
        record(sid, EVENT_TYPE, PAYLOAD)
    assert rt.flush(timeout=300)
    assert rt.stats()["written"] == VERIFY_EVENTS
    yield request.param, rt, sid, path
    rt.close()
    path.unlink()


def bench_verify_memory(benchmark: Any, report: Report, big_chain: Any) -> None:
    """rt.verify(sid) of one in-memory session."""
    algorithm, rt, sid, _ = big_chain
    result, seconds = _median_rounds(benchmark, rt.verify, args=(sid,), rounds=ROUNDS)
    assert result.valid and result.event_count == VERIFY_EVENTS
    assert result.algorithm == algorithm
    rate = VERIFY_EVENTS / seconds
    report.add(f"verify {algorithm}", "rt.verify() in memory", rate, "events/s", ">= 1,000,000")
    benchmark.extra_info.update(events=VERIFY_EVENTS, events_per_s=rate)


def bench_verify_jsonl(benchmark: Any, report: Report, big_chain: Any) -> None:
    """cra.verify_jsonl(path) of the same session's file (parsing included)."""
    algorithm, _, _, path = big_chain
    size = path.stat().st_size
    result, seconds = _median_rounds(benchmark, cra.verify_jsonl, args=(path,), rounds=ROUNDS)
    assert result.valid and result.event_count == VERIFY_EVENTS
    rate = VERIFY_EVENTS / seconds
    section = f"verify {algorithm}"
    report.add(section, "verify_jsonl() file", rate, "events/s", ">= 500,000")
    report.add(section, "verify_jsonl() file", size / seconds / 1e6, "MB/s")
    report.add(section, "file size", size / 1e6, "MB")
    benchmark.extra_info.update(events=VERIFY_EVENTS, bytes=size, events_per_s=rate)


# -- sealing on the flush thread --------------------------------------------


@pytest.mark.parametrize("algorithm", ["sha256", "blake3"])
def bench_seal_throughput(benchmark: Any, report: Report, algorithm: str) -> None:
    """Records SEAL_EVENTS as fast as possible, then waits for flush(): the
    pipeline rate, and the flush thread's own CPU time per event."""
    n = SEAL_EVENTS
    rounds: list[tuple[int, int, Any]] = []

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        before = set(flush_thread_ids())
        rt, sid = _runtime(hash_algorithm=algorithm, memory_limit=n + 1_000)
        # After a flush the new thread has surely named itself.
        assert rt.flush(timeout=10)
        new = sorted(set(flush_thread_ids()) - before)
        return (rt, sid, new[0] if len(new) == 1 else None), {}

    def run(rt: cra.Runtime, sid: str, tid: Any) -> None:
        record = rt.record
        cpu0 = thread_cpu_ns(tid)
        t0 = time.perf_counter_ns()
        for _ in repeat(None, n):
            record(sid, EVENT_TYPE, PAYLOAD)
        t1 = time.perf_counter_ns()
        assert rt.flush(timeout=300)
        t2 = time.perf_counter_ns()
        cpu1 = thread_cpu_ns(tid)
        cpu = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None
        rounds.append((t1 - t0, t2 - t0, cpu))

    def teardown(rt: cra.Runtime, sid: str, tid: Any) -> None:
        assert rt.stats()["written"] == n + 1
        rt.close()

    benchmark.pedantic(run, setup=setup, teardown=teardown, rounds=ROUNDS, warmup_rounds=0)
    section = f"sealing {algorithm}"
    pipeline = n / (statistics.median(r[1] for r in rounds) / 1e9)
    report.add(section, "record..flush() pipeline", pipeline, "events/s")
    extra: dict[str, Any] = {"events_per_round": n, "pipeline_events_per_s": pipeline}
    cpus = [r[2] for r in rounds if r[2]]
    if cpus:
        cpu_per_event = statistics.median(cpus) / n
        report.add(section, "flush thread, per CPU-second", 1e9 / cpu_per_event, "events/s")
        report.add(section, "flush thread CPU per event", cpu_per_event, "ns")
        extra["flush_thread_cpu_ns_per_event"] = cpu_per_event
    benchmark.extra_info.update(extra)
