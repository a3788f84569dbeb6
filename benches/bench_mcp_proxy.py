"""MCP proxy benchmark: `tools/call` latency straight to an upstream MCP
server, and through `cra mcp proxy` in front of the same server.

Run: `.venv/bin/python -m pytest benches/bench_mcp_proxy.py -q`
(`CRA_BENCH_QUICK=1` for a smoke run of a few seconds).

Both benches keep one MCP client session open (a stdio child) and time
`call_tool("echo", {"message": "hi"})` back to back, each call a full round
trip over the pipes. Through the proxy, each call is also resolved, checked
against the atlas (`tests/integrations/atlases/mcp_proxy.json`, where
`mcp.echo` is allowed with no limit), forwarded upstream and traced to a
`.trace.jsonl` file. The difference of the two medians is the latency the
proxy adds per call; it is in the end-of-run table.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, List, Optional

import pytest
from conftest import QUICK, Report

pytest.importorskip("mcp")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integrations"))

from mcp import ClientSession, stdio_client
from mcp_upstream import ATLASES, cra_args, stdio_params, upstream_args

SECTION = "MCP tools/call round trip (stdio)"
CALLS = 200 if QUICK else 2_000
WARMUP = 20 if QUICK else 200
ARGS = {"message": "hi"}


class Client:
    """One MCP client session kept open on a private event loop: the loop
    runs only inside `call`, and one long-lived task owns the session."""

    def __init__(self, argv: List[str]) -> None:
        self.loop = asyncio.new_event_loop()
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self.session: Optional[ClientSession] = None
        self._holder = self.loop.create_task(self._hold(argv))
        self.loop.run_until_complete(asyncio.wait_for(self._ready.wait(), 60))

    async def _hold(self, argv: List[str]) -> None:
        async with AsyncExitStack() as stack:
            read, write = await stack.enter_async_context(stdio_client(stdio_params(argv)))
            session = await stack.enter_async_context(ClientSession(read, write))
            await session.initialize()
            await session.list_tools()
            self.session = session
            self._ready.set()
            await self._stop.wait()

    def call(self) -> Any:
        assert self.session is not None
        result = self.loop.run_until_complete(self.session.call_tool("echo", ARGS))
        assert not result.is_error, result
        return result

    def close(self) -> None:
        self._stop.set()
        self.loop.run_until_complete(asyncio.wait_for(self._holder, 60))
        self.loop.close()


def _timed(client: Client) -> List[float]:
    """Microseconds of each of CALLS calls, after WARMUP untimed ones."""
    for _ in range(WARMUP):
        client.call()
    out = []
    for _ in range(CALLS):
        t0 = time.perf_counter_ns()
        client.call()
        out.append((time.perf_counter_ns() - t0) / 1000)
    return out


def _bench(benchmark: Any, report: Report, argv: List[str], name: str) -> float:
    client = Client(argv)
    try:
        samples = _timed(client)
        benchmark.pedantic(client.call, rounds=min(CALLS, 200), iterations=1, warmup_rounds=5)
    finally:
        client.close()
    median = statistics.median(samples)
    p99 = sorted(samples)[int(len(samples) * 0.99) - 1]
    benchmark.extra_info.update(calls=CALLS, median_us=median, p99_us=p99)
    report.add(SECTION, f"{name} p50", median, "us")
    report.add(SECTION, f"{name} p99", p99, "us")
    return median


def bench_mcp_call_direct(benchmark: Any, report: Report) -> None:
    """The upstream server alone."""
    _bench(benchmark, report, upstream_args(), "direct")


def bench_mcp_call_proxied(benchmark: Any, report: Report, tmp_path: Path) -> None:
    """The same server behind `cra mcp proxy` (tracing to a file)."""
    trace = tmp_path / "bench.trace.jsonl"
    argv = cra_args(
        "mcp", "proxy", "--atlas", str(ATLASES / "mcp_proxy.json"),
        "--trace-file", str(trace), "--", *upstream_args(),
    )  # fmt: skip
    median = _bench(benchmark, report, argv, "through cra mcp proxy")
    direct = report.get(SECTION, "direct p50")
    if direct is not None:
        report.add(SECTION, "added by the proxy (p50)", median - direct, "us")
