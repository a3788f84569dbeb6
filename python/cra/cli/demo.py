"""`cra demo` (and `make run`): the example agent session, printed step by step.

An example support agent works a ticket through the runtime, against the
atlas shipped in the package (`cra.demo`). Every step is governed and
traced; the trace is verified at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any, Callable, List

from .. import fast
from ..analysis import replay
from ..carp import CARPRequest, now_timestamp
from ..demo import AGENT, EXAMPLE_ATLAS, register_executors
from ..execute import ExecuteResponse
from ..runtime import Runtime
from ..trace import verify_jsonl
from .exits import EXIT_INVALID, EXIT_OK
from .safe import out

__all__ = ["add_commands", "run"]


def _median_us(fn: Callable[[], object], n: int) -> float:
    times: List[int] = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - t0)
    return statistics.median(times) / 1000.0


def _show(step: str, r: ExecuteResponse) -> None:
    err = r.error
    outcome = f"{r.status}" + (f" {err.code}: {err.message}" if err else f" -> {r.result}")
    out(f"   {step:<34} {outcome}")


def run(args: argparse.Namespace) -> int:
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = now_timestamp().replace(":", "").replace("-", "")[:15]
    trace_path = out_dir / f"demo-{stamp}.trace.jsonl"
    out(f"cra demo — atlas {EXAMPLE_ATLAS.name}, trace -> {trace_path}")
    out()

    with Runtime(trace_file=trace_path, atlases=[EXAMPLE_ATLAS]) as rt:
        register_executors(rt)
        goal = "Help the customer of ticket T-1042, who wants a refund"
        sid = rt.create_session(agent_id=AGENT, goal=goal)
        res = rt.resolve(CARPRequest.resolve(sid, AGENT, goal, risk_tier="medium"))
        d = res.decision
        out(f"1. resolve: {d.type} — {d.reason or 'everything allowed'}")
        for a in res.allowed_actions:
            out(
                f"   allowed  {a.action_id:<16}{'  (needs approval)' if a.requires_confirmation else ''}"
            )
        for x in res.denied_actions:
            out(f"   denied   {x.action_id:<16}  {x.reason} [{x.policy_id}]")
        for b in res.context_blocks:
            out(f"   context  {b.block_id} (priority {b.priority}, ~{b.token_estimate} tokens)")

        def execute(action: str, **params: Any) -> ExecuteResponse:
            req = CARPRequest.execute(sid, AGENT, goal, res.resolution_id, action, params)
            return rt.execute(req)

        out()
        out("2. the agent acts through the runtime")
        rt.record(
            sid,
            "x.llm.call",
            {"model": "example-model", "prompt_tokens": 812, "completion_tokens": 96},
        )
        _show("ticket.lookup T-1042", execute("ticket.lookup", ticket_id="T-1042"))
        _show("ticket.delete T-1042", execute("ticket.delete", ticket_id="T-1042"))
        _show("ticket.lookup 'bad id'", execute("ticket.lookup", ticket_id="1042"))
        pending = execute("refund.issue", order_id="O-77", amount=20)
        _show("refund.issue 20 EUR", pending)
        waiting = rt.pending_approvals(sid)[0]
        decision = rt.approve(
            waiting["approval_id"], approver="maria@support", note="order checked"
        )
        out(
            f"   {'human approves':<34} {decision['approver']} grants {decision['action_id']} "
            f"{waiting['parameters']} ({decision['scope']})"
        )
        _show(
            "refund.issue 900 EUR (not approved)",
            execute("refund.issue", order_id="O-77", amount=900),
        )
        _show("refund.issue 20 EUR (approved)", execute("refund.issue", order_id="O-77", amount=20))
        for n in (1, 2, 3):
            _show(
                f"ticket.reply #{n}",
                execute("ticket.reply", ticket_id="T-1042", body="Your refund is on its way."),
            )
        _show("ticket.update solved", execute("ticket.update", ticket_id="T-1042", status="solved"))
        rt.end_session(sid, "completed")
        rt.flush()
        events = len(rt.events(sid))

    out()
    out("3. measured on this machine (a separate in-memory runtime)")
    with Runtime(atlases=[EXAMPLE_ATLAS]) as bench:
        bsid = bench.create_session(agent_id="bench", goal="measure")
        resolver = fast.resolver(bench, bsid)
        resolve_us = _median_us(
            lambda: resolver.resolve("Look up a ticket", required_capabilities=["read"]), 2000
        )
        record, payload = bench.record, {"k": 1}
        record_us = _median_us(lambda: record(bsid, "x.tick", payload), 20000)
    out(f"   resolve (cra.fast, events included): median {resolve_us:.2f} us")
    out(
        f"   record  (rt.record):                 median {record_us:.2f} us (timer overhead included)"
    )

    report = verify_jsonl(trace_path)
    chain = next(iter(report.sessions.values()))
    replayed = replay(trace_path, [EXAMPLE_ATLAS])
    out()
    out(f"4. trace: {events} events, {os.path.getsize(trace_path)} bytes in {trace_path}")
    out(
        f"   verification: {'VALID' if report.valid else 'INVALID'} ({chain.algorithm}, "
        f"{chain.event_count} events in the chain)"
    )
    out(
        f"   replay against the atlas: {'IDENTICAL' if replayed.identical else 'DIVERGENT'} "
        f"({replayed.matched} of {len(replayed.requests)} decisions reproduced)"
    )
    out(f"   check it yourself: cra trace verify {trace_path}")
    out(f"                      cra trace show {trace_path}")
    return EXIT_OK if report.valid and replayed.identical else EXIT_INVALID


def add_commands(sub: Any) -> None:
    """Adds `cra demo` to the CLI's subparsers."""
    demo = sub.add_parser("demo", help="run the example agent session")
    demo.add_argument("--out", default="cra-traces", help="directory for the trace file")
    demo.set_defaults(func=run)
