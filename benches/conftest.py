"""Shared sizes, helpers and the summary table of the TRACE benchmarks.

`CRA_BENCH_QUICK=1` (used by `make test`) runs every benchmark with far
fewer calls and events so that the whole directory finishes in well under a
minute; the figures it prints are then only a smoke test, not measurements.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

QUICK = os.environ.get("CRA_BENCH_QUICK") == "1"

#: Individually timed record() calls (and OTel spans) of the percentile benches.
RECORD_CALLS = 100_000 if QUICK else 1_000_000
#: Calls per round of the amortised (tight loop) benches.
LOOP_CALLS = 100_000 if QUICK else 1_000_000
#: Events in the session (and file) that the verification benches verify.
VERIFY_EVENTS = 100_000 if QUICK else 1_000_000
#: Events pushed through the flush thread per round of the sealing benches.
SEAL_EVENTS = 100_000 if QUICK else 1_000_000
#: Rounds of the benches that repeat a whole measurement.
ROUNDS = 2 if QUICK else 3

#: The payload every benchmark records (the issue's example).
PAYLOAD: dict[str, Any] = {"k": 1}
EVENT_TYPE = "x.tool.call"


def percentile(sorted_values: Sequence[int], p: float) -> int:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return 0
    rank = max(1, -(-len(sorted_values) * p // 100))  # ceil(n * p / 100)
    return sorted_values[int(rank) - 1]


def summarise(values: Sequence[int]) -> dict[str, int]:
    """min, median, p90, p99, p99.9, p99.99 and max of nanosecond samples."""
    s = sorted(values)
    return {
        "min": s[0],
        "p50": percentile(s, 50),
        "p90": percentile(s, 90),
        "p99": percentile(s, 99),
        "p99.9": percentile(s, 99.9),
        "p99.99": percentile(s, 99.99),
        "max": s[-1],
    }


def flush_thread_ids() -> list[int]:
    """Thread ids of this process's `cra-trace-flush` threads (Linux only)."""
    out = []
    for task in Path("/proc/self/task").glob("*"):
        try:
            if (task / "comm").read_text().strip() == "cra-trace-flush":
                out.append(int(task.name))
        except OSError:
            continue
    return out


#: Bench-only A/B switch (never read by the library): the nice value each
#: new flush thread is given, e.g. `CRA_BENCH_FLUSH_NICE=0` / `=19`, so that
#: configurations can be alternated run by run. Unset: the runtime's own.
FLUSH_NICE = os.environ.get("CRA_BENCH_FLUSH_NICE")


def _renice_new_flush_threads(before: set[int], nice: int) -> None:
    """Sets `nice` on the flush threads that are not in `before` (they name
    themselves when they first run: wait for that, briefly)."""
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        new = set(flush_thread_ids()) - before
        if new:
            for tid in new:
                os.setpriority(os.PRIO_PROCESS, tid, nice)
            return
        time.sleep(0.0005)


if FLUSH_NICE is not None and hasattr(os, "setpriority"):
    import cra

    _NICE = int(FLUSH_NICE)
    _original_init = cra.Runtime.__init__

    def _init_with_flush_nice(self: Any, *args: Any, **kwargs: Any) -> None:
        before = set(flush_thread_ids())
        _original_init(self, *args, **kwargs)
        _renice_new_flush_threads(before, _NICE)

    cra.Runtime.__init__ = _init_with_flush_nice  # type: ignore[method-assign]


def thread_cpu_ns(tid: int | None) -> int | None:
    """CPU time a thread of this process has used, in ns (Linux schedstat)."""
    if tid is None:
        return None
    try:
        return int(Path(f"/proc/self/task/{tid}/schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class Row:
    section: str
    name: str
    value: float
    unit: str
    goal: str = ""


_ROWS: list[Row] = []
_FIGURES: dict[str, float] = {}


class Report:
    """Figures a benchmark wants in the end-of-run table."""

    def add(self, section: str, name: str, value: float, unit: str, goal: str = "") -> None:
        _ROWS.append(Row(section, name, value, unit, goal))
        _FIGURES[f"{section}/{name}"] = value

    def get(self, section: str, name: str) -> float | None:
        return _FIGURES.get(f"{section}/{name}")


@pytest.fixture(scope="session")
def report() -> Report:
    return Report()


def _machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ""
    if hasattr(os, "getloadavg"):
        load = "load avg {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    return (
        f"{os.cpu_count()} CPUs {model or platform.machine()}, "
        f"Python {platform.python_version()}, {load}"
    )


def _fmt(value: float, unit: str) -> str:
    if unit == "events/s":
        return f"{value:,.0f}"
    if unit == "x":
        return f"{value:.1f}"
    return f"{value:,.1f}" if abs(value) < 100 else f"{value:,.0f}"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _ROWS:
        return
    tr = terminalreporter
    mode = "QUICK (smoke test, not a measurement)" if QUICK else "full"
    tr.section(f"cra TRACE benchmarks: {mode}")
    tr.write_line(_machine())
    width = max(len(f"{r.section} {r.name}") for r in _ROWS)
    section = None
    for r in _ROWS:
        if r.section != section:
            section = r.section
            tr.write_line("")
            tr.write_line(section)
        value = f"{_fmt(r.value, r.unit):>14} {r.unit:<9}"
        goal = f"  (goal {r.goal})" if r.goal else ""
        tr.write_line(f"  {r.name:<{width - len(r.section)}} {value}{goal}")


#: A call of similar length that touches nothing of cra, timed next to each
#: measured call in the spaced benches: its tail is what the machine alone
#: does to a tail.
_CONTROL_LIST = list(range(20))


def control() -> Any:
    return sorted(_CONTROL_LIST)


def timed_empty_and_control(
    empty: Any,
    ctl: Any,
    start: int,
    stop: int,
    pc: Callable[[], int] = time.perf_counter_ns,
    control: Callable[[], Any] = control,
) -> None:
    for i in range(start, stop):
        t0 = pc()
        t1 = pc()
        control()
        t2 = pc()
        empty[i] = t1 - t0
        ctl[i] = t2 - t1
