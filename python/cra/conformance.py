"""The protocol conformance suite: runs the cases shipped in the package
(`cra/conformance_cases/`, see `specs/README.md`), or those of another
directory.

The data-driven cases run against this implementation; the report is in
the protocol's format (`cra conformance` prints it).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from . import _core
from .analysis import diff, replay
from .carp import CARPRequest, now_timestamp
from .errors import CraError
from .runtime import Runtime
from .timing import ManualClock, SessionTTLConfig
from .trace import verify_chain

__all__ = ["CASES_DIR", "default_cases_dir", "load_cases", "match", "run_suite"]

#: The conformance cases shipped inside the package (and so in its wheel).
CASES_DIR = Path(__file__).resolve().parent / "conformance_cases"

DYNAMIC = "$dynamic"


class Mismatch(AssertionError):
    pass


def match(actual: Any, expected: Any, path: str = "", exact: bool = False) -> None:
    """Checks `actual` against `expected`: `"$dynamic"` matches anything;
    objects match on the expected keys (all keys when `exact`); arrays match
    element by element and in length; other values must be equal and of the
    same JSON type."""
    if expected == DYNAMIC:
        return
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            raise Mismatch(f"{path or '/'}: expected an object, got {actual!r}")
        if exact and set(actual) != set(expected):
            raise Mismatch(
                f"{path or '/'}: keys differ: extra {sorted(set(actual) - set(expected))}, "
                f"missing {sorted(set(expected) - set(actual))}"
            )
        for k, v in expected.items():
            if k not in actual:
                raise Mismatch(f"{path}/{k}: missing")
            match(actual[k], v, f"{path}/{k}", exact)
    elif isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            raise Mismatch(f"{path or '/'}: expected {len(expected)} items, got {actual!r}")
        for i, (a, e) in enumerate(zip(actual, expected)):
            match(a, e, f"{path}/{i}", exact)
    elif actual != expected or isinstance(actual, bool) != isinstance(expected, bool):
        raise Mismatch(f"{path or '/'}: expected {expected!r}, got {actual!r}")


def _substitute(value: Any, names: Dict[str, str]) -> Any:
    if isinstance(value, str) and value in names:
        return names[value]
    if isinstance(value, dict):
        return {k: _substitute(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, names) for v in value]
    return value


class Case:
    def __init__(self, data: Dict[str, Any], base: Path) -> None:
        self.data, self.base = data, base
        self.id: str = data["id"]
        self.kind: str = data["kind"]

    def atlas_source(self, src: Any) -> Any:
        return str(self.base / src) if isinstance(src, str) else src


def _case_request(case: Case) -> None:
    faults = _core.check_request(case.data["request"])
    exp = case.data["expect"]
    if exp["valid"]:
        if faults:
            raise Mismatch(f"expected valid, got faults {faults}")
        return
    paths = [p for p, _ in faults]
    for p in exp.get("paths", []):
        if p not in paths:
            raise Mismatch(f"expected a fault at {p}, got {faults}")
    if not faults:
        raise Mismatch("expected invalid, got valid")


def _case_atlas(case: Case) -> None:
    exp = case.data["expect"]
    with Runtime() as rt:
        try:
            for dep in case.data.get("load_first", []):
                rt.load_atlas(case.atlas_source(dep))
            rt.load_atlas(case.atlas_source(case.data["atlas"]))
        except CraError as e:
            if exp["valid"]:
                raise Mismatch(f"expected valid, got {e.code}: {e}") from None
            paths = [f["path"] for f in e.errors]
            for p in exp.get("paths", []):
                if p not in paths:
                    raise Mismatch(f"expected a fault at {p}, got {e.errors}") from None
            if "code" in exp and e.code != exp["code"]:
                raise Mismatch(f"expected {exp['code']}, got {e.code}") from None
            return
        if not exp["valid"]:
            raise Mismatch("expected the atlas to be rejected, it loaded")


def _case_hash(case: Case) -> None:
    ev = case.data["event"]
    payload = _core.canonical_json(ev["payload"])
    for alg, want in case.data["expect"].items():
        got = _core.event_hash(
            alg,
            ev["trace_version"],
            ev["event_id"],
            ev["trace_id"],
            ev["span_id"],
            ev["parent_span_id"],
            ev["session_id"],
            ev["sequence"],
            ev["timestamp"],
            ev["event_type"],
            payload,
            ev["previous_event_hash"],
        )
        if got != want:
            raise Mismatch(f"{alg}: expected {want}, got {got}")


def _case_chain(case: Case) -> None:
    v = verify_chain(case.data["events"])
    match({"valid": v.valid, "error": v.error, "index": v.index}, case.data["expect"])


def _events(rt: Runtime, sid: str, start: int) -> List[Dict[str, Any]]:
    return [{"event_type": e.event_type, "payload": e.payload} for e in rt.events(sid)[start:]]


def _case_resolve(case: Case) -> None:
    d = case.data
    sess = d.get("session", {})
    with Runtime(clock_skew_seconds=None) as rt:
        for src in d.get("atlases", []):
            rt.load_atlas(case.atlas_source(src))
        sid = rt.create_session(
            agent_id=sess.get("agent_id", "conformance-agent"), goal=sess.get("goal", "conformance")
        )
        for n, step in enumerate(d["steps"]):
            before = 0 if step.get("events_from_start") else len(rt.events(sid))
            request = _substitute(step["request"], {"$session": sid, "$now": now_timestamp()})
            exp = step["expect"]
            try:
                res = rt.resolve(request)
            except CraError as e:
                if "error" not in exp:
                    raise Mismatch(f"step {n}: {e.code}: {e}") from None
                match({"code": e.code, "path": e.path}, exp["error"], f"/steps/{n}/error")
            else:
                if "error" in exp:
                    raise Mismatch(f"step {n}: expected error {exp['error']}, got {res!r}")
                if "resolution" in exp:
                    match(res.to_dict(), exp["resolution"], "", exact=exp.get("exact", False))
            if "events" in exp:
                match(_events(rt, sid, before), exp["events"], f"/steps/{n}/events")
        v = rt.verify(sid)
        if not v.valid:
            raise Mismatch(f"the trace does not verify: {v}")


class _Flow:
    """Runs the steps of a `flow` case against one runtime and session."""

    def __init__(self, case: Case, rt: Runtime, sid: str, agent: str, goal: str) -> None:
        self.case, self.rt, self.sid, self.agent, self.goal = case, rt, sid, agent, goal
        self.resolutions: Dict[str, Any] = {}
        self.responses: Dict[str, Any] = {}

    def names(self) -> Dict[str, str]:
        names = {"$session": self.sid, "$now": self.rt.timestamp()}
        if "default" in self.resolutions:
            names["$resolution"] = self.resolutions["default"].resolution_id
        return names

    def step(self, n: int, step: Dict[str, Any]) -> None:
        exp = step.get("expect", {})
        where = f"/steps/{n}"
        try:
            got = self.run(step)
        except CraError as e:
            if "error" not in exp:
                raise Mismatch(f"step {n}: {e.code}: {e}") from None
            match({"code": e.code, "path": e.path}, exp["error"], f"{where}/error")
            return
        if "error" in exp and not isinstance(got, dict):
            raise Mismatch(f"step {n}: expected error {exp['error']}, got {got!r}")
        if "error" in exp:
            match(got, {"error": exp["error"]}, where)
        for key in ("response", "resolution", "report", "decision", "pending"):
            if key in exp:
                match(got, exp[key], where)
        if "events" in exp:
            events = [
                {"event_type": e.event_type, "payload": e.payload} for e in self.rt.events(self.sid)
            ]
            match(events[-len(exp["events"]) :], exp["events"], f"{where}/events")

    def run(self, step: Dict[str, Any]) -> Any:
        rt = self.rt
        if "resolve" in step:
            req = _substitute(step["resolve"], self.names())
            res = rt.resolve(req)
            self.resolutions[step.get("save", "default")] = res
            return res.to_dict()
        if "execute" in step:
            e = step["execute"]
            rid = (
                e.get("resolution_id")
                or self.resolutions[e.get("resolution", "default")].resolution_id
            )
            req = CARPRequest.execute(
                self.sid,
                self.agent,
                self.goal,
                rid,
                e["action_id"],
                e.get("parameters", {}),
                idempotency_key=e.get("idempotency_key"),
                request_id=e.get("request_id"),
                timestamp=rt.timestamp(),
            )
            resp = rt.execute(req).to_dict()
            if "save" in step:
                self.responses[step["save"]] = resp
            return resp
        if "approve" in step or "reject" in step:
            a = step.get("approve") or step["reject"]
            res = self.resolutions[a.get("resolution", "default")]
            approval_id = res.decision.approval_id
            if "approve" in step:
                return rt.approve(
                    approval_id,
                    a.get("approver", "conformance"),
                    note=a.get("note"),
                    action_id=a.get("action_id"),
                    scope=a.get("scope", "once"),
                )
            return rt.reject(approval_id, a.get("approver", "conformance"), note=a.get("note"))
        if "pending" in step:
            return {"pending": rt.pending_approvals(self.sid)}
        if "validate" in step:
            return rt.validate(_substitute(step["validate"], self.names()))
        if "advance" in step:
            self.clock.advance(float(step["advance"]))
            return None
        if "same_response" in step:
            a, b = step["same_response"]
            if self.responses[a]["execution_id"] != self.responses[b]["execution_id"]:
                raise Mismatch(f"responses {a} and {b} differ")
            return None
        if "end_session" in step:
            rt.end_session(self.sid, step["end_session"])
            return None
        raise Mismatch(f"unknown step {sorted(step)}")

    clock: Any = None


def _case_diff(case: Case) -> None:
    d = case.data
    match(diff(d["a"], d["b"]).to_dict(), d["expect"], "", exact=True)


def _case_replay(case: Case) -> None:
    """Runs the case's flow, then replays its trace against `replay_atlases`
    (default: the same atlases)."""
    d = case.data
    trace = _case_flow(case)
    atlases = [case.atlas_source(a) for a in d.get("replay_atlases", d.get("atlases", []))]
    report = replay(trace, atlases)
    got = {
        "identical": report.identical,
        "matched": report.matched,
        "mismatched": report.mismatched,
    }
    match(got, d["expect"], "/replay")


def _case_flow(case: Case) -> List[Any]:
    d = case.data
    sess = d.get("session", {})
    agent, goal = sess.get("agent_id", "conformance-agent"), sess.get("goal", "conformance")
    clock = ManualClock(start=float(d.get("clock", 1_800_000_000.0)))
    ttl = d.get("session_ttl")
    with Runtime(clock=clock, session_ttl=SessionTTLConfig(**ttl) if ttl else None) as rt:
        for src in d.get("atlases", []):
            rt.load_atlas(case.atlas_source(src))
        failing = set(d.get("failing", []))
        for info in rt.atlases():
            for action_id in info.actions:
                rt.register_executor(action_id, _echo(action_id, action_id in failing))
        sid = rt.create_session(agent_id=agent, goal=goal)
        flow = _Flow(case, rt, sid, agent, goal)
        flow.clock = clock
        for n, step in enumerate(d["steps"]):
            flow.step(n, step)
        v = rt.verify(sid)
        if not v.valid:
            raise Mismatch(f"the trace does not verify: {v}")
        return [e.to_json() for e in rt.events(sid)]


def _echo(action_id: str, fail: bool) -> Callable[..., Any]:
    def run(**parameters: Any) -> Any:
        if fail:
            raise RuntimeError(f"{action_id} failed on purpose")
        return {"action_id": action_id, "parameters": parameters}

    return run


RUNNERS: Dict[str, Callable[[Case], Any]] = {
    "flow": _case_flow,
    "diff": _case_diff,
    "replay": _case_replay,
    "request": _case_request,
    "atlas": _case_atlas,
    "hash": _case_hash,
    "chain": _case_chain,
    "resolve": _case_resolve,
}


def load_cases(directory: Path) -> List[Case]:
    """The cases of every `*.json` file below `directory` (files under an
    `atlases/` folder are atlases, not cases), in path order."""
    cases: List[Case] = []
    for path in sorted(directory.rglob("*.json")):
        if "atlases" in path.relative_to(directory).parts:
            continue
        doc = json.loads(path.read_text(encoding="utf-8"))
        for data in doc.get("cases", []):
            cases.append(Case(data, directory))
    return cases


def run_suite(directory: Path) -> Dict[str, Any]:
    """Runs every case in `directory`; returns the protocol's report."""
    started, t0 = now_timestamp(), time.perf_counter()
    results: List[Dict[str, Any]] = []
    for case in load_cases(directory):
        runner = RUNNERS.get(case.kind)
        c0 = time.perf_counter()
        entry: Dict[str, Any] = {"test_id": case.id}
        if runner is None:
            entry["status"] = "skipped"
            entry["error"] = f"no runner for kind {case.kind!r}"
        else:
            try:
                runner(case)
                entry["status"] = "passed"
            except Exception as e:
                entry["status"] = "failed"
                entry["error"] = f"{type(e).__name__}: {e}"
        entry["duration_ms"] = round((time.perf_counter() - c0) * 1000, 3)
        results.append(entry)
    counts = {s: sum(r["status"] == s for r in results) for s in ("passed", "failed", "skipped")}
    level = (
        "full"
        if counts["failed"] == 0 and counts["skipped"] == 0
        else ("partial" if counts["failed"] == 0 else "non_conformant")
    )
    return {
        "implementation": "cra",
        "version": _core.__version__,
        "conformance_level": level,
        "test_run": {
            "timestamp": started,
            "duration_ms": round((time.perf_counter() - t0) * 1000, 3),
            "total": len(results),
            **counts,
        },
        "results": results,
    }


def default_cases_dir() -> Optional[Path]:
    """The cases `cra conformance` runs by default: `CRA_CONFORMANCE_DIR`
    when it is set, else the ones shipped in the package (`CASES_DIR`);
    None when that directory does not exist."""
    env = os.environ.get("CRA_CONFORMANCE_DIR")
    directory = Path(env) if env else CASES_DIR
    return directory if directory.is_dir() else None
