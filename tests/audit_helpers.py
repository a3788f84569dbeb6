"""Helpers of the storage, replay, diff, reconstruction, trace CLI and demo
tests: the three stores behind one opener, a governed session on a manual
clock that fills a rate limit and a budget and waits for an approval, and
small readers and writers of trace files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Union

import cra
from cra.storage import JSONLStore, MemoryStore, SQLiteStore, Store
from cra.timing import ManualClock
from execute_helpers import START, Harness, code, ops_atlas
from resolve_helpers import policy

ROOT = Path(__file__).resolve().parent.parent
AUDIT_CASES = ROOT / "python" / "cra" / "conformance_cases" / "audit.json"

#: Every store kind, as test ids.
STORE_KINDS = ("memory", "jsonl", "sqlite")

#: A deny policy that makes the operations atlas stricter than the one recorded.
NO_ECHO = policy("no-echo", "deny", ["api.echo"], reason="Echo is switched off")

Event = Union[cra.TRACEEvent, Mapping[str, Any]]


def stricter_atlas() -> dict[str, Any]:
    """The operations atlas with `api.echo` denied."""
    return ops_atlas(extra_policies=[NO_ECHO])


# -- stores --------------------------------------------------------------------------


class StoreOpener:
    """Opens one kind of store at a fixed place; `reopen()` closes it and
    opens it again from disk, as a restarted process would (a memory store
    has nothing on disk, so it is the same object)."""

    def __init__(self, kind: str, base: Path) -> None:
        self.kind = kind
        self.base = base
        self.store: Store | None = None

    @property
    def location(self) -> Path:
        return self.base / ("store.db" if self.kind == "sqlite" else "traces")

    def open(self) -> Store:
        if self.kind == "memory":
            self.store = self.store or MemoryStore()
        elif self.kind == "jsonl":
            self.store = JSONLStore(self.location)
        else:
            self.store = SQLiteStore(self.location)
        return self.store

    def close(self) -> None:
        if self.kind != "memory" and self.store is not None:
            self.store.close()  # type: ignore[attr-defined]

    def reopen(self) -> Store:
        self.close()
        return self.open()


def tamper(opener: StoreOpener, session_id: str, index: int, payload: dict[str, Any]) -> None:
    """Replaces the payload of a stored event (its hash left as it was)."""
    store = opener.store
    assert store is not None
    if isinstance(store, MemoryStore):
        texts = store._events[session_id]
        e = json.loads(texts[index])
        e["payload"] = payload
        texts[index] = json.dumps(e)
    elif isinstance(store, JSONLStore):
        store.flush()
        path = store.path_of(session_id)
        lines = path.read_text(encoding="utf-8").splitlines()
        e = json.loads(lines[index])
        e["payload"] = payload
        lines[index] = json.dumps(e)
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    else:
        assert isinstance(store, SQLiteStore)
        # Through the store's own connection: one SQLite library per file.
        db = store._db
        of_session = store._of_session  # the events of a session, in the store's layout
        ((text,),) = db.query(
            f"SELECT event FROM events WHERE {of_session} ORDER BY sequence LIMIT 1 OFFSET ?",
            (session_id, index),
        )
        e = json.loads(text)
        e["payload"] = payload
        db.transaction(
            [
                (
                    f"UPDATE events SET event = ? WHERE {of_session} AND sequence = ?",
                    (json.dumps(e), session_id, e["sequence"]),
                )
            ]
        )


# -- traces --------------------------------------------------------------------------


def as_dicts(events: Iterable[Event]) -> list[dict[str, Any]]:
    return [e.to_dict() if isinstance(e, cra.TRACEEvent) else dict(e) for e in events]


def write_trace(path: Path, events: Iterable[Event]) -> Path:
    """Writes events as a `.trace.jsonl` file."""
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(json.dumps(e) + "\n" for e in as_dicts(events))
    return path


def write_atlas(path: Path, manifest: Mapping[str, Any]) -> Path:
    path.write_text(json.dumps(manifest), encoding="utf-8")
    return path


def tear(path: Path, fragment: bytes = b'{"trace_version": "1.0", "event_id": "01') -> int:
    """Appends half a line, as a crash mid-write leaves it; returns its size."""
    with open(path, "ab") as f:
        f.write(fragment)
    return len(fragment)


def span_events(events: Sequence[Event], sequence: int) -> list[dict[str, Any]]:
    """The events of the span opened by the event with this sequence."""
    ds = as_dicts(events)
    span = next(e["span_id"] for e in ds if e["sequence"] == sequence)
    return [e for e in ds if e["span_id"] == span]


def load_audit_cases(kind: str) -> list[dict[str, Any]]:
    with open(AUDIT_CASES, encoding="utf-8") as f:
        cases: list[dict[str, Any]] = json.load(f)["cases"]
    return [c for c in cases if c["kind"] == kind]


# -- a governed session --------------------------------------------------------------


@dataclass
class GovernedRun:
    """What `governed_session` did: its resolutions in order and the
    outcome codes of each execution step."""

    harness: Harness
    resolutions: list[cra.CARPResolution]
    outcomes: list[str]

    @property
    def events(self) -> list[cra.TRACEEvent]:
        self.harness.rt.flush()
        return self.harness.events()


def outcome(r: Any) -> str:
    return r.status if r.status == "success" or r.error is None else f"{r.status}:{code(r)}"


def governed_session(h: Harness, *, end: bool = True) -> GovernedRun:
    """Four resolves around executions that fill the rate limit of `api.call`
    (2 per 60 s) and the credit budget (2), a refund that waits for a human and
    runs once approved, and a window that slides open again."""
    run = GovernedRun(h, [], [])
    step: Callable[..., None] = lambda *a, **kw: run.outcomes.append(outcome(h.execute(*a, **kw)))  # noqa: E731
    run.resolutions.append(h.resolve())
    for _ in range(3):
        step("api.call", {"path": "/a"})
    h.clock.advance(5)
    run.resolutions.append(h.resolve())
    for _ in range(3):
        step("credit.use")
    h.clock.advance(5)
    refunds = h.resolve()
    run.resolutions.append(refunds)
    step("payment.refund", {"order_id": "o-1", "amount": 20})
    assert refunds.decision.approval_id is not None
    h.rt.approve(refunds.decision.approval_id, "alice")
    step("payment.refund", {"order_id": "o-1", "amount": 20})
    h.clock.advance(60)
    run.resolutions.append(h.resolve())
    if end:
        h.rt.end_session(h.sid, "completed")
    h.rt.flush()
    return run


#: The outcomes `governed_session` expects, in order.
GOVERNED_OUTCOMES = [
    "success",
    "success",
    "denied:RATE_LIMIT_EXCEEDED",
    "success",
    "success",
    "denied:BUDGET_EXCEEDED",
    "pending_approval:APPROVAL_REQUIRED",
    "success",
]


# -- the command line ----------------------------------------------------------------


def run_cli(
    *args: str | os.PathLike[str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m cra ARGS` in a subprocess, its output captured as text."""
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    return subprocess.run(
        [sys.executable, "-m", "cra", *map(os.fspath, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
        check=False,
    )


class Recording:
    """A runtime on a manual clock whose only sink is the store under test."""

    def __init__(self, opener: StoreOpener, start: float = START) -> None:
        self.opener = opener
        self.clock = ManualClock(start=start)
        self.rt = cra.Runtime(sinks=[opener.store], clock=self.clock)

    def session(self, agent: str = "agent-1", goal: str = "Work", ticks: int = 0) -> str:
        sid = self.rt.create_session(agent, goal)
        for i in range(ticks):
            self.rt.record(sid, "x.tick", {"i": i})
        return sid

    def dicts(self, sid: str) -> list[dict[str, Any]]:
        self.rt.flush()
        return [e.to_dict() for e in self.rt.events(sid)]

    def close(self) -> None:
        self.rt.close(timeout=10)


class Capture:
    """A sink that keeps every sealed event, in the order written."""

    def __init__(self) -> None:
        self.events: list[cra.TRACEEvent] = []

    def write_batch(self, events: list[cra.TRACEEvent]) -> None:
        self.events.extend(events)
