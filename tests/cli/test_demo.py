"""`cra demo` (and `make run`): the example agent session against the atlas
shipped in the package — it resolves, executes, is refused a denied action,
waits for and receives an approval, hits a rate limit, ends, writes its
trace, verifies and replays it, and prints what it measured."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cra
import pytest
from audit_helpers import run_cli
from cra.analysis import SessionState
from cra.demo import EXAMPLE_ATLAS


@dataclass
class DemoRun:
    cwd: Path
    out: Path
    process: subprocess.CompletedProcess[str]

    @property
    def traces(self) -> list[Path]:
        return sorted(self.out.rglob("*.trace.jsonl"))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    cwd = tmp_path_factory.mktemp("demo")
    out = cwd / "out" / "traces"
    yield DemoRun(cwd, out, run_cli("demo", "--out", out, cwd=cwd))


def test_the_demo_exits_0(demo: DemoRun) -> None:
    assert demo.process.returncode == 0, demo.process.stdout + demo.process.stderr
    assert "Traceback" not in demo.process.stderr


def test_the_demo_writes_one_trace_that_verifies(demo: DemoRun) -> None:
    (trace,) = demo.traces
    assert trace.parent == demo.out
    report = cra.verify_jsonl(trace)
    assert report.valid
    assert report.torn_tail is None and report.bad_line_count == 0
    (chain,) = report.sessions.values()
    assert chain.algorithm == "sha256"
    assert f"{chain.event_count} events in the chain" in demo.process.stdout
    assert "verification: VALID" in demo.process.stdout
    # Nothing is written outside --out.
    assert sorted(p.name for p in demo.cwd.iterdir()) == ["out"]


def test_the_demo_prints_latencies_and_the_replay(demo: DemoRun) -> None:
    out = demo.process.stdout
    assert re.search(r"^ +resolve \(cra\.fast, events included\): median [0-9.]+ us$", out, re.M)
    assert re.search(r"^ +record +\(rt\.record\): +median [0-9.]+ us", out, re.M)
    assert re.search(
        r"^ +replay against the atlas: IDENTICAL \((\d+) of \1 decisions reproduced\)$", out, re.M
    )


def test_the_demo_session_went_through_every_step(demo: DemoRun) -> None:
    (trace,) = demo.traces
    state = cra.reconstruct(trace)
    assert isinstance(state, SessionState)
    assert state.session["agent_id"] == "support-bot"
    assert (state.session["status"], state.session["end_reason"]) == ("ended", "completed")
    assert len(state.resolutions) >= 1
    statuses = [(x["action_id"], x["status"]) for x in state.executions]
    assert ("ticket.lookup", "success") in statuses
    assert ("ticket.delete", "denied") in statuses
    assert ("refund.issue", "pending_approval") in statuses
    assert ("refund.issue", "success") in statuses
    assert [(a["approver"], a["granted"]) for a in state.approvals] == [("maria@support", True)]
    rate_limited = [
        x
        for x in state.executions
        if x["status"] == "denied" and x["reason"] == "rate_limit_exceeded"
    ]
    assert [x["action_id"] for x in rate_limited] == ["ticket.reply"]


def test_the_demo_trace_replays_from_the_command_line(demo: DemoRun) -> None:
    (trace,) = demo.traces
    assert cra.replay(trace, [EXAMPLE_ATLAS]).identical
    p = run_cli("trace", "replay", "--atlas", EXAMPLE_ATLAS, trace)
    assert p.returncode == 0, p.stdout + p.stderr


def test_the_demo_writes_to_cra_traces_by_default(tmp_path: Path) -> None:
    p = run_cli("demo", cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    (trace,) = (tmp_path / "cra-traces").glob("demo-*.trace.jsonl")
    assert cra.verify_jsonl(trace).valid
    assert f"cra-traces/{trace.name}" in p.stdout
