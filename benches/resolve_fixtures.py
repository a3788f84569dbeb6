"""Helpers of the CARP benchmarks (issues 3 and 4): the worked-example atlas,
runtimes with a session, request dicts with pre-minted ids, a percentile
loop timed with perf_counter_ns, a generator of large atlases, and the
compact tables each benchmark prints.

Sizes shrink when `CRA_BENCH_QUICK=1` (see `conftest.QUICK`): every bench
still runs, but its figures are then a smoke test, not a measurement.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import time
from array import array
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import cra
from conftest import QUICK, flush_thread_ids, summarise, thread_cpu_ns

ROOT = Path(__file__).resolve().parents[1]
#: The worked example: 5 actions, 3 policies, 1 context block for a plain goal.
WORKED_ATLAS = ROOT / "python" / "cra" / "conformance_cases" / "atlases" / "resources"
WORKED_ACTIONS = (
    "resource.get",
    "resource.list",
    "resource.create",
    "resource.update",
    "resource.delete",
)
GOAL = "Manage resources"
AGENT = "bench-agent"
#: Events a resolve of the worked example records (request, 5 policy
#: evaluations, 1 context block, completion); `session.started` is one more.
EVENTS_PER_RESOLVE = 8

#: Individually timed calls per round of the percentile benches (>= 100,000).
PERCENTILE_CALLS = 2_000 if QUICK else 100_000
#: Rounds of a whole measurement (each on a fresh runtime); medians are reported.
ROUNDS = 1 if QUICK else 3
#: Calls per timed block; an untimed flush() between blocks empties the queue
#: (65,536 records; a resolve or an execute is one record).
BLOCK_CALLS = 20_000
#: Untimed calls before the first timed one.
WARMUP_CALLS = 200 if QUICK else 5_000

KEYS = ("min", "p50", "p90", "p99", "p99.9", "max")


def load_now() -> float:
    """The 1-minute load average (the machine has 2 cores; others use them)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def worked_manifest(**overrides: Any) -> dict[str, Any]:
    """The worked-example manifest as a dict (load with `base_dir=WORKED_ATLAS`)."""
    manifest: dict[str, Any] = json.loads((WORKED_ATLAS / "atlas.json").read_text())
    manifest.update(overrides)
    return manifest


def runtime_with_session(
    atlases: Iterable[Any] = (WORKED_ATLAS,), *, agent_id: str = AGENT, **options: Any
) -> tuple[cra.Runtime, str]:
    """A runtime with `atlases` loaded and one session of `agent_id`."""
    rt = cra.Runtime(atlases=atlases, **options)
    sid = rt.create_session(agent_id=agent_id, goal="benchmark")
    return rt, sid


def memory_for(events: int) -> int:
    """A memory limit with room for every event a bench records (no eviction)."""
    return events + 10_000


def new_ids(n: int) -> list[str]:
    """`n` fresh request ids (minted before any timing starts)."""
    new_id = cra.carp.new_id
    return [new_id() for _ in range(n)]


def resolve_request(rt: cra.Runtime, sid: str, goal: str = GOAL, **task: Any) -> dict[str, Any]:
    """A resolve request dict on the runtime's clock; set a fresh
    `request_id` before each use."""
    return cra.CARPRequest.resolve(sid, AGENT, goal, timestamp=rt.timestamp(), **task)


class Samples:
    """Per-call nanoseconds of one percentile loop and the empty timer pair
    timed in the same iterations."""

    def __init__(self, calls: array[int], timer: array[int]) -> None:
        self.raw = summarise(calls)
        self.timer = summarise(timer)
        # Raw minus the median cost of an empty perf_counter_ns() pair.
        self.corrected = {k: max(0, v - self.timer["p50"]) for k, v in self.raw.items()}
        self.n = len(calls)


def percentile_loop(
    call: Callable[[Any], Any],
    arg_at: Callable[[int], Any],
    n: int,
    *,
    between: Callable[[], Any] | None = None,
    block: int = BLOCK_CALLS,
) -> Samples:
    """Times `call(arg_at(i))` for i < n one call at a time with
    perf_counter_ns; `arg_at` runs untimed, and so does `between()` before
    each block of `block` calls. An empty timer pair is timed in each
    iteration too, so the overhead is known under the same load."""
    calls = array("q", bytes(8 * n))
    timer = array("q", bytes(8 * n))
    pc = time.perf_counter_ns
    for start in range(0, n, block):
        if between is not None:
            between()
        for i in range(start, min(n, start + block)):
            arg = arg_at(i)
            t0 = pc()
            call(arg)
            t1 = pc()
            t2 = pc()
            t3 = pc()
            calls[i] = t1 - t0
            timer[i] = t3 - t2
    return Samples(calls, timer)


def median_of(rounds: Sequence[Samples], part: str, key: str) -> float:
    """The median over rounds of one percentile (`part`: raw, timer or corrected)."""
    return statistics.median(getattr(s, part)[key] for s in rounds)


def samples_info(prefix: str, rounds: Sequence[Samples]) -> dict[str, Any]:
    """extra_info entries: median over rounds of each percentile, and each round's."""
    out: dict[str, Any] = {f"{prefix}calls_per_round": rounds[0].n, f"{prefix}rounds": len(rounds)}
    for part in ("raw", "timer", "corrected"):
        for key in KEYS:
            out[f"{prefix}{part}_{key}_ns"] = median_of(rounds, part, key)
    out[f"{prefix}per_round_corrected_p50_ns"] = [s.corrected["p50"] for s in rounds]
    out[f"{prefix}per_round_corrected_p99_ns"] = [s.corrected["p99"] for s in rounds]
    return out


def samples_rows(label: str, rounds: Sequence[Samples]) -> list[list[str]]:
    """Table rows (call and timer pair) with the medians over rounds."""
    rows = []
    for part, name in (
        ("raw", label),
        ("timer", "  empty timer pair"),
        ("corrected", "  corrected"),
    ):
        rows.append([name] + [f"{median_of(rounds, part, k):,.0f}" for k in KEYS])
    return rows


def new_flush_thread(before: Iterable[int]) -> int | None:
    """The id of the flush thread started since `before` was listed (Linux)."""
    new = sorted(set(flush_thread_ids()) - set(before))
    return new[-1] if new else None


def tight_loop(
    benchmark: Any,
    rt: cra.Runtime,
    target: Callable[[], Any],
    bookkeeping: Callable[[], Any],
    flush_tid: int | None,
    *,
    calls_per_round: int,
    rounds: int,
) -> dict[str, float]:
    """Runs `target` back to back under pytest-benchmark (one warm-up round,
    `rounds` rounds of `calls_per_round` calls) and returns per-call figures:
    pytest-benchmark's median, the cost of `bookkeeping` alone, the caller's
    wall and CPU time, the flush thread's CPU time, and the wall time until
    every event is sealed. CPU times do not count time spent preempted, so
    they move less with the machine's load than wall times."""
    cpu0, flush0 = time.thread_time_ns(), thread_cpu_ns(flush_tid)
    t0 = time.perf_counter()
    benchmark.pedantic(target, rounds=rounds, iterations=calls_per_round, warmup_rounds=1)
    loop_s = time.perf_counter() - t0
    cpu1 = time.thread_time_ns()
    assert rt.flush(timeout=120)
    sealed_s = time.perf_counter() - t0
    flush1 = thread_cpu_ns(flush_tid)
    # pytest-benchmark runs the target once more for its result (once in all
    # when it is disabled).
    calls = 1 if getattr(benchmark, "disabled", False) else calls_per_round * (rounds + 1) + 1
    overhead = []
    for _ in range(5):
        t = time.perf_counter_ns()
        for _ in range(calls_per_round):
            bookkeeping()
        overhead.append((time.perf_counter_ns() - t) / calls_per_round)
    stats = getattr(benchmark, "stats", None)
    out = {
        "per_call_median_ns": float(stats.stats.median) * 1e9 if stats else float("nan"),
        "bookkeeping_ns": statistics.median(overhead),
        "caller_wall_per_call_ns": loop_s / calls * 1e9,
        "caller_cpu_per_call_ns": (cpu1 - cpu0) / calls,
        "flush_cpu_per_call_ns": float("nan"),
        "until_sealed_per_call_ns": sealed_s / calls * 1e9,
    }
    if flush0 is not None and flush1 is not None:
        out["flush_cpu_per_call_ns"] = (flush1 - flush0) / calls
    return out


def tight_rows(fig: dict[str, float]) -> list[list[str]]:
    """Table rows of `tight_loop` figures."""
    names = (
        ("per_call_median_ns", "pytest-benchmark median (wall)"),
        ("bookkeeping_ns", "  of which loop bookkeeping"),
        ("caller_wall_per_call_ns", "caller wall, all rounds"),
        ("caller_cpu_per_call_ns", "caller CPU time"),
        ("flush_cpu_per_call_ns", "flush thread CPU time (sealing)"),
        ("until_sealed_per_call_ns", "wall until all events sealed"),
    )
    return [[label, f"{fig[key]:,.0f}"] for key, label in names]


def report_tight_loop(
    report: Any,
    benchmark: Any,
    capsys: Any,
    section: str,
    fig: dict[str, float],
    *,
    events_per_call: int,
    load: float,
    rounds: int,
    calls: int,
) -> None:
    """Adds a tight loop's figures (`tight_loop`) to the report and the
    benchmark's extra info, and prints its table."""
    load_after = load_now()
    report.add(section, "per call (pytest-benchmark median)", fig["per_call_median_ns"], "ns")
    report.add(section, "  of which loop bookkeeping", fig["bookkeeping_ns"], "ns")
    report.add(section, "caller CPU time per call", fig["caller_cpu_per_call_ns"], "ns")
    report.add(section, "flush thread CPU time per call", fig["flush_cpu_per_call_ns"], "ns")
    benchmark.extra_info.update(
        fig, events_per_call=events_per_call, load_before=load, load_after=load_after
    )
    show(
        capsys,
        f"{section}: {rounds} rounds x {calls:,} calls, ns per call "
        f"(load {load:.2f} -> {load_after:.2f})",
        ["figure", "ns"],
        tight_rows(fig),
    )


def show(capsys: Any, title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Prints a compact table (also when pytest captures output)."""
    cells = [list(map(str, header))] + [list(map(str, r)) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [f"\n{title}"]
    for j, row in enumerate(cells):
        first = row[0].ljust(widths[0])
        rest = "  ".join(c.rjust(w) for c, w in zip(row[1:], widths[1:]))
        lines.append(f"  {first}  {rest}")
        if j == 0:
            lines.append("  " + "-" * (sum(widths) + 2 * (len(widths) - 1)))
    with capsys.disabled():
        print("\n".join(lines))


# -- large atlases -----------------------------------------------------------

VERBS = ("get", "list", "create", "update", "delete")
RISK = {"get": "low", "list": "low", "create": "medium", "update": "medium", "delete": "high"}
#: Actions per service: 20 resources x 5 verbs.
PER_SERVICE = 100
SCALE_ATLAS_ID = "org.bench.scale"
#: The capability of exactly 10 actions (svc0.res0.* and svc0.res1.*).
TEN_ACTION_CAPABILITY = "cap0"

_PARAMS = {
    "type": "object",
    "required": ["id"],
    "properties": {
        "id": {"type": "string", "minLength": 1},
        "limit": {"type": "integer", "minimum": 1, "maximum": 100},
    },
    "additionalProperties": False,
}


def action_id(k: int) -> str:
    """The k-th action of a scale atlas: `svc<S>.res<R>.<verb>`."""
    service, within = divmod(k, PER_SERVICE)
    resource, verb = divmod(within, len(VERBS))
    return f"svc{service}.res{resource}.{VERBS[verb]}"


def scale_manifest(
    n_actions: int,
    n_policies: int | None = None,
    n_capabilities: int | None = None,
    *,
    atlas_id: str = SCALE_ATLAS_ID,
    seed: int = 42,
) -> dict[str, Any]:
    """An atlas of `n_actions` actions (services of 20 resources x 5 verbs,
    each with a parameters schema), `n_policies` policies (default n/5) and
    `n_capabilities` capabilities (default n/100, at least 1).

    Policies, in this order: per service a prefix allow `svcS.*`, a glob
    rate limit `svcS.*.create` and a glob deny `svcS.res1*.delete`; a few
    global ones (suffix deny `*.delete`, approval for `*.update` at high risk
    only, suffix allows `*.get`/`*.list`, a dead `*.purge`, a budget); the
    rest exact ids (allow, deny, approval limited to some agents), picked
    with a fixed seed. Capability c covers the first 2..20 resources of
    service c mod S (10 to 100 actions); `cap0` has exactly 10 actions.
    """
    rng = random.Random(seed)
    n_policies = max(8, n_actions // 5) if n_policies is None else n_policies
    n_capabilities = max(1, n_actions // 100) if n_capabilities is None else n_capabilities
    ids = [action_id(k) for k in range(n_actions)]
    known = set(ids)
    services = -(-n_actions // PER_SERVICE)
    actions = [
        {
            "action_id": a,
            "name": a.replace(".", " "),
            "description": f"{a.rsplit('.', 1)[1]} a {a.split('.')[1]} of {a.split('.')[0]}",
            "risk_tier": RISK[a.rsplit(".", 1)[1]],
            "idempotent": not a.endswith(".create"),
            "parameters_schema": _PARAMS,
        }
        for a in ids
    ]

    def resources_of(service: int) -> int:
        last = min(n_actions, (service + 1) * PER_SERVICE) - service * PER_SERVICE
        return max(1, last // len(VERBS))

    capabilities = []
    for c in range(n_capabilities):
        service = c % services
        wanted = 2 + (c * 7) % 19 if c else 2
        k = min(wanted, resources_of(service))
        acts = [f"svc{service}.res{r}.{v}" for r in range(k) for v in VERBS]
        capabilities.append(
            {
                "capability_id": f"cap{c}",
                "name": f"Capability {c}",
                "description": f"{len(acts)} actions of service {service}",
                "actions": [a for a in acts if a in known],
            }
        )

    policies: list[dict[str, Any]] = []
    for s in range(services):
        policies.append({"policy_id": f"svc{s}-allow", "type": "allow", "actions": [f"svc{s}.*"]})
        policies.append(
            {
                "policy_id": f"svc{s}-create-limit",
                "type": "rate_limit",
                "actions": [f"svc{s}.*.create"],
                "parameters": {"max_calls": 10_000, "window_seconds": 60},
            }
        )
        policies.append(
            {
                "policy_id": f"svc{s}-res1x-no-delete",
                "type": "deny",
                "actions": [f"svc{s}.res1*.delete"],
                "reason": "Batch resources are never deleted",
            }
        )
    policies += [
        {
            "policy_id": "never-delete",
            "type": "deny",
            "actions": ["*.delete"],
            "priority": 100,
            "reason": "Deleting needs a ticket",
        },
        {
            "policy_id": "risky-updates",
            "type": "require_approval",
            "actions": ["*.update"],
            "conditions": {"risk_tiers": ["high", "critical"]},
        },
        {"policy_id": "reads", "type": "allow", "actions": ["*.get", "*.list"]},
        {"policy_id": "no-purge", "type": "deny", "actions": ["*.purge"]},
        {
            "policy_id": "create-budget",
            "type": "budget",
            "actions": ["*.create"],
            "parameters": {"limit": 1_000_000, "costs": {"*.create": 1}, "scope": "agent"},
        },
    ]
    kinds = ("allow", "allow", "deny", "require_approval")
    i = 0
    while len(policies) < n_policies:
        a = ids[rng.randrange(n_actions)]
        kind = kinds[i % len(kinds)]
        p: dict[str, Any] = {"policy_id": f"exact-{i}", "type": kind, "actions": [a]}
        if kind == "require_approval":
            p["conditions"] = {"agent_ids": ["intern-*", "contractor.*"]}
        if kind == "deny":
            p["reason"] = f"{a} is switched off"
        if i % 10 == 0:
            p["priority"] = rng.randrange(1, 50)
        policies.append(p)
        i += 1
    policies = policies[:n_policies]
    return {
        "atlas_version": "1.0",
        "atlas_id": atlas_id,
        "version": "1.0.0",
        "name": f"Scale {n_actions}",
        "description": f"{n_actions} actions, {len(policies)} policies, {len(capabilities)} capabilities",
        "authors": ["cra benches"],
        "license": "Apache-2.0",
        "domains": ["benchmark"],
        "capabilities": capabilities,
        "context_packs": [
            {
                "pack_id": "overview",
                "name": "Overview",
                "content": "# Services\n\nRead before you write; nothing is deleted without a ticket.",
                "content_type": "text/markdown",
                "priority": 100,
            },
            {
                "pack_id": "deletion",
                "name": "Deletion rules",
                "content": "Open a ticket to delete anything.",
                "content_type": "text/markdown",
                "priority": 50,
                "conditions": {"keywords": ["delete", "remove"]},
            },
        ],
        "policies": policies,
        "actions": actions,
        "default_ttl_seconds": 86_400,
    }


def write_manifest(manifest: dict[str, Any], directory: Path) -> Path:
    """Writes `manifest` as `directory/atlas.json`; returns the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "atlas.json").write_text(json.dumps(manifest))
    return directory
