"""Replay benchmark (issue 5): `cra.replay(path, [atlas])` of a trace of
REPLAY_EVENTS events recorded by a real session (resolves and executions
against a copy of the example support atlas whose rate limit and budget are
raised so that executions succeed). Each round runs in a fresh interpreter.
Memory: growth of the peak resident set (`VmHWM` of /proc/self/status,
reset through /proc/self/clear_refs just before replay, minus `VmRSS` then;
it includes the Rust core's allocations) and, in a second replay in the
same process, the peak of Python allocations (`tracemalloc`, which does not
see the Rust core's allocations). The core streams the file (issue #5);
the most events its replay engine held at once is reported from the
report's `stats`.

Run: `.venv/bin/python -m pytest benches/bench_replay.py -q`
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cra
import pytest
from conftest import QUICK, Report
from cra.carp import CARPRequest
from storage_helpers import AGENT, ROUNDS, median

#: Events of the replayed trace.
REPLAY_EVENTS = 3_000 if QUICK else 100_000
EXAMPLE_ATLAS = Path(cra.__file__).parent / "examples" / "support"
GOAL = "Help the customer of ticket T-1042, who wants a refund"


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
    seconds = median([r["seconds"] for r in runs])
    mb = 1e6
    report.add(section, "wall time", seconds * 1e3, "ms")
    report.add(section, "events replayed per second", REPLAY_EVENTS / seconds, "events/s")
    report.add(
        section,
        "events held at once (replay engine)",
        max(r["stats"]["peak_events_held"] for r in runs),
        "events",
    )
    hwm = median([r["hwm_after"] - r["rss_before"] for r in runs])
    report.add(section, "peak RSS growth (VmHWM - VmRSS)", hwm / mb, "MB")
    report.add(section, "peak RSS (VmHWM)", median([r["hwm_after"] for r in runs]) / mb, "MB")
    # ru_maxrss is not reported: a child inherits the peak of the process it
    # was forked from (pytest's), so its growth understates replay's (it is
    # kept in extra_info).
    report.add(
        section,
        "tracemalloc peak (Python only)",
        median([r["tracemalloc_peak"] for r in runs]) / mb,
        "MB",
    )
    report.add(section, "trace file", path.stat().st_size / mb, "MB")
    report.add(section, "resolves re-run", built["resolves"], "requests")
    benchmark.extra_info.update(
        events=REPLAY_EVENTS, trace_bytes=path.stat().st_size, built=built, runs=runs
    )
