"""Load bench of `cra serve` on loopback: resolve (or execute) latency and
throughput, then proof that nothing was lost (every chain verifies, every
answered request has its events in the store).

    .venv/bin/python benches/http_load.py                # 100,000 resolves
    .venv/bin/python benches/http_load.py --operation execute
    CRA_BENCH_QUICK=1 .venv/bin/python benches/http_load.py   # a few seconds

The server answers a resolve or an execute only once its events are
committed to the store, so every 200 counted here is an acknowledged,
durable request.

What it does, all against 127.0.0.1 only:

1. starts `python -m cra serve` on a free port with a temporary SQLite store
   and the bundled example atlas, and waits for `/v1/health`;
2. creates `--sessions` sessions;
3. sends resolves over keep-alive HTTP/1.1 connections from one asyncio
   client with raw sockets (the cheapest client Python has, so that the
   client takes as little as possible of the 2 CPUs it shares with the
   server): first one connection (latency), then more at once (throughput);
   with `--operation execute` it resolves once per session first and then
   sends executes of `ticket.lookup` ({"ticket_id": "T-1"}) against that
   resolution (no rate limit or approval applies to it; the resolution lives
   the atlas's 30 minutes), which the server runs with the trivial executor
   of benches/http_executors.py (`CRA_EXECUTORS=http_executors:EXECUTORS`);
4. asks the server to verify every chain and counts each session's
   `carp.resolution.completed` events against the resolves answered 200 and,
   for executes, its `action.executed` events against the execution ids of
   the executes answered 200;
5. stops the server with SIGTERM, reopens the store file, and checks again:
   every chain verifies, no sequence is missing, the counts match and every
   answered execution id has its `action.executed` event.

Bounded in count (`--requests`) and time (`--max-seconds`): a phase stops at
whichever comes first. Exit status 1 if any check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
BENCHES = Path(__file__).resolve().parent
EXAMPLE_ATLAS = ROOT / "python" / "cra" / "examples" / "support"
HOST = "127.0.0.1"
QUICK = os.environ.get("CRA_BENCH_QUICK") == "1"
#: The executors `--operation execute` has the server run (benches/ on its path).
EXECUTORS = "http_executors:EXECUTORS"
PATHS = {"resolve": "/v1/resolve", "execute": "/v1/execute"}


# -- the server ----------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def start_server(
    workdir: Path, port: int, executors: Optional[str] = None, store: Optional[str] = None
) -> subprocess.Popen[bytes]:
    workdir.mkdir(parents=True, exist_ok=True)
    atlases = workdir / "atlases"
    shutil.copytree(EXAMPLE_ATLAS, atlases / "support")
    env = dict(os.environ)
    env.update(
        CRA_HOST=HOST,
        CRA_PORT=str(port),
        CRA_STORE=store or str(workdir / "cra.db"),
        CRA_ATLAS_DIR=str(atlases),
        CRA_LOG_LEVEL="warning",
    )
    env.pop("CRA_API_KEYS", None)
    env.pop("CRA_EXECUTORS", None)
    if executors:
        env["CRA_EXECUTORS"] = executors
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BENCHES), env.get("PYTHONPATH")]))
    log = open(workdir / "server.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cra", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {(workdir / 'server.log').read_text()}")
        try:
            status, _ = http_call(port, "GET", "/v1/health")
            if status == 200:
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("server did not answer /v1/health within 30 s")


def stop_server(proc: subprocess.Popen[bytes], timeout: float = 60) -> Tuple[int, float]:
    """SIGTERM, then wait; returns the exit code and the seconds it took."""
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = proc.wait()
    return code, time.monotonic() - t0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def http_call(port: int, method: str, path: str, body: Any = None) -> Tuple[int, Any]:
    """One blocking request on a fresh connection (setup and checks)."""
    data = b"" if body is None else json.dumps(body).encode()
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    ).encode()
    with socket.create_connection((HOST, port), timeout=60) as s:
        s.sendall(head + data)
        chunks = []
        while True:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    raw = b"".join(chunks)
    header, _, payload = raw.partition(b"\r\n\r\n")
    status = int(header.split(b" ", 2)[1])
    return status, (json.loads(payload) if payload else None)


# -- the client ------------------------------------------------------------------
_RESOLVE = (
    '{{"carp_version":"1.0","request_id":"{rid}","timestamp":"{ts}","operation":"resolve",'
    '"requester":{{"agent_id":"bench-agent","session_id":"{sid}"}},'
    '"task":{{"goal":"Look up ticket T-42 and reply to the customer"{caps}}}}}'
)


def resolve_template(capabilities: str) -> str:
    """The request text with `{rid}`, `{ts}`, `{sid}` left to fill in."""
    caps = ""
    if capabilities:
        names = ",".join(json.dumps(c) for c in capabilities.split(","))
        caps = ',"required_capabilities":[' + names.replace("{", "{{").replace("}", "}}") + "]"
    return _RESOLVE.replace("{caps}", caps)


_EXECUTE = (
    '{{"carp_version":"1.0","request_id":"{rid}","timestamp":"{ts}","operation":"execute",'
    '"requester":{{"agent_id":"bench-agent","session_id":"{sid}"}},'
    '"task":{{"goal":"Look up ticket T-42 and reply to the customer"}},'
    '"execution":{{"resolution_id":"RESOLUTION","action_id":"ticket.lookup",'
    '"parameters":{{"ticket_id":"T-1"}}}}}}'
)


def execute_template(resolution_id: str) -> str:
    """An execute of `ticket.lookup` against one resolution, with `{rid}`,
    `{ts}`, `{sid}` left to fill in."""
    return _EXECUTE.replace("RESOLUTION", resolution_id)


def execution_id_of(body: bytes) -> str:
    """The `execution_id` of an execute answer ("" if it has none)."""
    i = body.find(b'"execution_id"')
    if i < 0:
        return ""
    j = body.find(b'"', body.find(b":", i) + 1)
    k = body.find(b'"', j + 1)
    return body[j + 1 : k].decode() if 0 <= j < k else ""


def _timestamp() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"


@dataclass
class Phase:
    name: str
    concurrency: int
    requests: int = 0
    ok: int = 0
    errors: Dict[int, int] = field(default_factory=dict)
    latencies_ns: List[int] = field(default_factory=list)
    seconds: float = 0.0
    server_cpu: float = 0.0
    client_cpu: float = 0.0


class Connection:
    """One keep-alive HTTP/1.1 connection sending requests."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: Optional[asyncio.StreamReader] = None
        self.writer: Optional[asyncio.StreamWriter] = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def post(self, path: str, body: bytes) -> Tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        self.writer.write(
            b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (path.encode(), len(body), body)
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
                break
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def run_phase(
    ports: List[int],
    path: str,
    templates: Dict[str, str],
    phase: Phase,
    sessions: List[str],
    answered: Dict[str, int],
    deadline: float,
    server_pids: List[int],
    executed: Optional[Dict[str, List[str]]] = None,
) -> None:
    """Sends `phase.requests` requests over `phase.concurrency` connections,
    each session's from `templates[session]` to `path`; with `executed`,
    keeps the execution id of every execute answered 200. Connection `i`
    goes to replica `i % len(ports)`, which (with as many sessions and
    connections as a multiple of the replicas) created its sessions."""
    conns = [Connection(ports[i % len(ports)]) for i in range(phase.concurrency)]
    await asyncio.gather(*(c.open() for c in conns))
    remaining = [phase.requests]
    stamp: List[Any] = [_timestamp(), time.monotonic()]

    async def worker(conn: Connection, wid: int) -> None:
        i = wid
        while remaining[0] > 0 and time.monotonic() < deadline:
            remaining[0] -= 1
            now = time.monotonic()
            if now - stamp[1] > 0.1:
                stamp[0], stamp[1] = _timestamp(), now
            sid = sessions[i % len(sessions)]
            i += phase.concurrency
            body = templates[sid].format(rid=uuid.uuid4(), ts=stamp[0], sid=sid).encode()
            t0 = time.perf_counter_ns()
            status, answer = await conn.post(path, body)
            phase.latencies_ns.append(time.perf_counter_ns() - t0)
            if status == 200:
                phase.ok += 1
                answered[sid] = answered.get(sid, 0) + 1
                if executed is not None:
                    executed.setdefault(sid, []).append(execution_id_of(answer))
            else:
                phase.errors[status] = phase.errors.get(status, 0) + 1

    cpu0, ccpu0 = sum(map(cpu_seconds, server_pids)), time.process_time()
    t0 = time.perf_counter()
    await asyncio.gather(*(worker(c, w) for w, c in enumerate(conns)))
    phase.seconds = time.perf_counter() - t0
    phase.server_cpu = sum(map(cpu_seconds, server_pids)) - cpu0
    phase.client_cpu = time.process_time() - ccpu0
    phase.requests = len(phase.latencies_ns)
    for c in conns:
        c.close()


def percentile(values: List[int], p: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    rank = max(1, -(-len(s) * p // 100))
    return s[int(rank) - 1] / 1e6


# -- the checks ------------------------------------------------------------------
def _executions_faults(sid: str, events: List[Dict[str, Any]], ids: List[str]) -> List[str]:
    """Each answered execution id has exactly one `action.executed` event,
    and there is no other."""
    found = [e["payload"].get("execution_id") for e in events]
    if len(found) == len(ids) and set(found) == set(ids) and len(set(ids)) == len(ids):
        return []
    missing = len(set(ids) - set(found))
    return [f"{sid}: {len(found)} executions in the trace, {len(ids)} answered, {missing} missing"]


def check_over_http(
    port: int,
    resolved: Dict[str, int],
    sessions: List[str],
    executed: Optional[Dict[str, List[str]]] = None,
) -> List[str]:
    faults = []
    for sid in sessions:
        n = resolved.get(sid, 0)
        status, v = http_call(port, "GET", f"/v1/traces/{sid}/verify")
        if status != 200 or not v["valid"]:
            faults.append(f"{sid}: verify answered {status} {v}")
        path = f"/v1/traces/{sid}?event_type=carp.resolution.completed"
        status, events = http_call(port, "GET", path)
        if status != 200 or len(events) != n:
            faults.append(f"{sid}: {len(events)} resolutions in the trace, {n} answered")
        if executed is not None:
            status, events = http_call(port, "GET", f"/v1/traces/{sid}?event_type=action.executed")
            if status != 200:
                faults.append(f"{sid}: executions answered {status}")
            else:
                faults += _executions_faults(sid, events, executed.get(sid, []))
    return faults


def check_store(
    address: str,
    resolved: Dict[str, int],
    sessions: List[str],
    executed: Optional[Dict[str, List[str]]] = None,
) -> Dict[str, Any]:
    sys.path.insert(0, str(ROOT / "python"))
    from cra.storage import open_store

    store = open_store(address)
    faults = []
    events = 0
    for sid in sessions:
        row = store.session(sid)
        v = store.verify(sid)
        if not v.valid:
            faults.append(f"{sid}: {v.error} at {v.index}: {v.message}")
        if row["event_count"] != row["last_sequence"] + 1 or v.event_count != row["event_count"]:
            faults.append(
                f"{sid}: {row['event_count']} events, last sequence {row['last_sequence']}"
            )
        done = len(store.events(sid, event_type="carp.resolution.completed"))
        if done != resolved.get(sid, 0):
            faults.append(f"{sid}: {done} resolutions stored, {resolved.get(sid, 0)} answered")
        if executed is not None:
            ran = store.events(sid, event_type="action.executed")
            faults += _executions_faults(sid, ran, executed.get(sid, []))
        events += row["event_count"]
    store.close()
    return {"faults": faults, "events": events}


# -- main ------------------------------------------------------------------------
def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=3_000 if QUICK else 100_000)
    p.add_argument("--latency-requests", type=int, default=500 if QUICK else 10_000)
    p.add_argument("--concurrency", default="4,16" if QUICK else "2,4,8,16,32")
    p.add_argument("--sessions", type=int, default=8 if QUICK else 100)
    p.add_argument("--max-seconds", type=float, default=20 if QUICK else 300)
    p.add_argument(
        "--capabilities",
        default="",
        help="required_capabilities of every request, comma-separated (default: none, "
        "so every action of the atlas is a candidate)",
    )
    p.add_argument(
        "--operation",
        choices=sorted(PATHS),
        default="resolve",
        help="what the timed requests do (default resolve); execute resolves once per "
        "session first, then executes ticket.lookup against that resolution",
    )
    p.add_argument(
        "--executors",
        default=EXECUTORS,
        help=f"CRA_EXECUTORS of the server for --operation execute (default {EXECUTORS}, "
        "found on benches/)",
    )
    p.add_argument(
        "--store",
        default=None,
        help="the servers' store (default: a new SQLite file); a postgresql:// URL may "
        "be shared by --replicas",
    )
    p.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="servers on the one store (PostgreSQL only); connection i goes to replica i %% N",
    )
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = p.parse_args(argv)
    if args.replicas > 1 and not (args.store or "").startswith("postgresql://"):
        p.error("--replicas needs --store postgresql://…")
    levels = [int(c) for c in args.concurrency.split(",")]
    template = resolve_template(args.capabilities)
    execute = args.operation == "execute"
    path = PATHS[args.operation]
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    workdir = Path(tempfile.mkdtemp(prefix="cra-http-bench-"))
    store = args.store or str(workdir / "r0" / "cra.db")
    ports = [free_port() for _ in range(args.replicas)]
    procs = [
        start_server(workdir / f"r{i}", port, args.executors if execute else None, store)
        for i, port in enumerate(ports)
    ]
    port = ports[0]
    deadline = time.monotonic() + args.max_seconds
    answered: Dict[str, int] = {}
    # Resolves answered 200 per session (the timed ones, or the one per
    # session that executes use), and each answered execute's execution id.
    resolved: Dict[str, int] = answered
    executed: Optional[Dict[str, List[str]]] = None
    phases: List[Phase] = []
    try:
        sessions = []
        for i in range(args.sessions):
            status, s = http_call(
                ports[i % len(ports)],
                "POST",
                "/v1/sessions",
                {"agent_id": "bench-agent", "goal": f"bench {i}"},
            )
            assert status == 201, (status, s)
            sessions.append(s["session_id"])
        templates = dict.fromkeys(sessions, template)
        if execute:
            resolved, executed = {}, {}
            for i, sid in enumerate(sessions):
                body = json.loads(template.format(rid=uuid.uuid4(), ts=_timestamp(), sid=sid))
                status, res = http_call(ports[i % len(ports)], "POST", "/v1/resolve", body)
                assert status == 200 and any(
                    a["action_id"] == "ticket.lookup" for a in res["allowed_actions"]
                ), (status, res)
                resolved[sid] = 1
                templates[sid] = execute_template(res["resolution_id"])

        def run(ph: Phase) -> None:
            asyncio.run(
                run_phase(
                    ports,
                    path,
                    templates,
                    ph,
                    sessions,
                    answered,
                    deadline,
                    [p.pid for p in procs],
                    executed,
                )
            )

        warm = Phase("warm-up", 4, min(1_000, args.requests // 10))
        run(warm)
        left = args.requests - warm.requests
        lat = Phase("latency (1 connection)", 1, min(args.latency_requests, left))
        run(lat)
        phases.append(lat)
        left -= lat.requests
        for i, c in enumerate(levels):
            share = left // (len(levels) - i)
            ph = Phase(f"{c} connections", c, share)
            run(ph)
            phases.append(ph)
            left -= ph.requests
        sent = warm.requests + sum(ph.requests for ph in phases)
        http_faults = check_over_http(port, resolved, sessions, executed)
    finally:
        stops = [stop_server(p) for p in procs]
        code = next((c for c, _ in stops if c not in (0, -signal.SIGTERM)), stops[0][0])
        stop_seconds = max(t for _, t in stops)
    stored = check_store(store, resolved, sessions, executed)
    ok = sum(answered.values())
    report(phases, sent, ok, http_faults, stored, code, stop_seconds, args)
    if args.json:
        out = figures(phases, sent, ok, stored)
        Path(args.json).write_text(json.dumps({"operation": args.operation, **out}, indent=2))
    # uvicorn re-raises the SIGTERM it handled once shutdown is complete.
    clean = code in (0, -signal.SIGTERM)
    faults = http_faults + stored["faults"] + ([] if clean else [f"server exit code {code}"])
    if not faults:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"kept {workdir} for inspection")
    return 1 if faults else 0


def figures(phases: List[Phase], sent: int, ok: int, stored: Dict[str, Any]) -> Dict[str, Any]:
    return {
        "requests": sent,
        "answered_200": ok,
        "stored_events": stored["events"],
        "phases": [
            {
                "phase": ph.name,
                "concurrency": ph.concurrency,
                "requests": ph.requests,
                "ok": ph.ok,
                "errors": ph.errors,
                "seconds": round(ph.seconds, 3),
                "requests_per_second": round(ph.requests / ph.seconds, 1) if ph.seconds else 0,
                "p50_ms": percentile(ph.latencies_ns, 50),
                "p90_ms": percentile(ph.latencies_ns, 90),
                "p99_ms": percentile(ph.latencies_ns, 99),
                "server_cpu_us_per_request": round(1e6 * ph.server_cpu / max(ph.requests, 1), 1),
                "client_cpu_us_per_request": round(1e6 * ph.client_cpu / max(ph.requests, 1), 1),
            }
            for ph in phases
        ],
    }


def report(
    phases: List[Phase],
    sent: int,
    ok: int,
    http_faults: List[str],
    stored: Dict[str, Any],
    code: int,
    stop_seconds: float,
    args: argparse.Namespace,
) -> None:
    mode = "QUICK (smoke test, not a measurement)" if QUICK else "full"
    load = "load avg {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    print(f"cra HTTP load bench: {mode}; {os.cpu_count()} CPUs, {load}")
    caps = f", required_capabilities [{args.capabilities}]" if args.capabilities else ""
    what = PATHS[args.operation]
    if args.operation == "execute":
        what += " (ticket.lookup, one resolution per session)"
    where = "SQLite" if not args.store else args.store.split("://")[0]
    print(
        f"POST {what} on 127.0.0.1, {args.sessions} sessions, example support atlas{caps}, "
        f"{args.replicas} replica(s) on {where}"
    )
    print()
    cols = f"{'phase':<24}{'requests':>9}{'req/s':>9}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}"
    print(cols + f"{'srv µs/req':>12}{'cli µs/req':>12}  errors")
    for f in figures(phases, sent, ok, stored)["phases"]:
        print(
            f"{f['phase']:<24}{f['requests']:>9}{f['requests_per_second']:>9.0f}"
            f"{f['p50_ms']:>9.3f}{f['p90_ms']:>9.3f}{f['p99_ms']:>9.3f}"
            f"{f['server_cpu_us_per_request']:>12.0f}{f['client_cpu_us_per_request']:>12.0f}"
            f"  {f['errors'] or '-'}"
        )
    print()
    print(f"{args.operation} requests sent {sent}, answered 200: {ok}")
    print(f"server stopped by SIGTERM in {stop_seconds:.2f} s, exit code {code}")
    print(f"store: {stored['events']} events in {args.sessions} chains")
    faults = http_faults + stored["faults"]
    if faults:
        print(f"FAILED: {len(faults)} faults")
        for f in faults[:20]:
            print("  " + f)
    else:
        print("every chain verifies (over HTTP and in the store file); no event is missing")
        if args.operation == "execute":
            print("every execute answered 200 has its action.executed event (by execution_id)")


if __name__ == "__main__":
    raise SystemExit(main())
