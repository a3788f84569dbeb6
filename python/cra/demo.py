"""`cra demo` (and `make run`): an example agent session against the atlas
shipped in the package, traced, verified and summarised."""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Callable, List

from . import fast
from .carp import CARPRequest, now_timestamp
from .runtime import Runtime
from .trace import verify_jsonl

EXAMPLE_ATLAS = Path(__file__).parent / "examples" / "support"


def _median_us(fn: Callable[[], object], n: int) -> float:
    times: List[float] = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - t0)
    return statistics.median(times) / 1000.0


def run(args: argparse.Namespace) -> int:
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = now_timestamp().replace(":", "").replace("-", "")[:15]
    trace_path = out_dir / f"demo-{stamp}.trace.jsonl"
    print(f"cra demo — example atlas {EXAMPLE_ATLAS.name}, trace -> {trace_path}")

    with Runtime(trace_file=trace_path, atlases=[EXAMPLE_ATLAS]) as rt:
        goal = "Help a customer who wants a refund for order 1042"
        sid = rt.create_session(agent_id="support-bot", goal=goal)
        res = rt.resolve(CARPRequest.resolve(sid, "support-bot", goal, risk_tier="medium"))
        d = res.decision
        print(f"\n1. resolve: decision {d.type} ({d.reason or 'everything allowed'})")
        for a in res.allowed_actions:
            gate = "  needs approval" if a.requires_confirmation else ""
            print(f"   allowed  {a.action_id:<16}{gate}")
        for x in res.denied_actions:
            print(f"   denied   {x.action_id:<16}  {x.reason} [{x.policy_id}]")
        for b in res.context_blocks:
            print(f"   context  {b.block_id} (priority {b.priority}, ~{b.token_estimate} tokens)")

        print("\n2. the agent works; every step is recorded")
        rt.record(sid, "x.llm.call", {"model": "example", "prompt_tokens": 812, "completion_tokens": 96})
        rt.record(sid, "x.tool.call", {"tool": "ticket.lookup", "ticket_id": "T-1042"})

        rt.end_session(sid, "completed")
        rt.flush()
        stats = rt.stats()

    print("\n3. measured on this machine (a separate in-memory runtime)")
    with Runtime(atlases=[EXAMPLE_ATLAS]) as bench:
        bsid = bench.create_session(agent_id="bench", goal="measure")
        resolver = fast.resolver(bench, bsid)
        resolve_us = _median_us(lambda: resolver.resolve("Look up a ticket", required_capabilities=["read"]), 2000)
        record, payload = bench.record, {"k": 1}
        record_us = _median_us(lambda: record(bsid, "x.tick", payload), 20000)
    print(f"   resolve (cra.fast, events included): median {resolve_us:.2f} us")
    print(f"   record  (rt.record):                   median {record_us:.2f} us (timer overhead included)")

    report = verify_jsonl(trace_path)
    print(f"\n4. trace: {report.event_count} events in {trace_path} "
          f"({os.path.getsize(trace_path)} bytes), {stats['dropped']} dropped")
    print(f"   verification: {'VALID' if report.valid else 'INVALID'} "
          f"({next(iter(report.sessions.values())).algorithm})")
    print(f"   check it yourself: cra trace verify {trace_path}")
    return 0 if report.valid else 1
