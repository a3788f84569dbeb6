"""`cra trace verify FILE [--json]`: exit 0 valid, 1 invalid, 2 unreadable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cra
import pytest
from conftest import read_jsonl, write_jsonl


def verify(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cra", "trace", "verify", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def trace(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "cli.trace.jsonl"
    with cra.Runtime(trace_file=path) as rt:
        sid = rt.create_session(agent_id="cli", goal="be verified")
        for i in range(5):
            rt.record(sid, "x.step", {"i": i})
    return path, sid


def tamper(path: Path, index: int) -> None:
    events = read_jsonl(path)
    events[index]["payload"]["i"] = 1000
    write_jsonl(path, events)


def test_valid_file_exits_0(trace: tuple[Path, str]) -> None:
    path, sid = trace
    done = verify(str(path))
    assert done.returncode == 0, done.stderr
    assert "VALID" in done.stdout and sid in done.stdout


def test_tampered_file_exits_1_and_says_what_and_where(trace: tuple[Path, str]) -> None:
    path, _ = trace
    tamper(path, 3)
    done = verify(str(path))
    assert done.returncode == 1
    assert "INVALID" in done.stdout
    assert "hash_mismatch" in done.stdout and "event 3" in done.stdout


def test_missing_file_exits_2(tmp_path: Path) -> None:
    done = verify(str(tmp_path / "nope.trace.jsonl"))
    assert done.returncode == 2
    assert "nope.trace.jsonl" in done.stderr


def test_json_report(trace: tuple[Path, str]) -> None:
    path, sid = trace
    done = verify("--json", str(path))
    assert done.returncode == 0
    report = json.loads(done.stdout)
    assert report["valid"] is True and report["torn_tail"] is None
    (session,) = report["sessions"]
    assert session["session_id"] == sid and session["valid"] and session["event_count"] == 6


def test_json_report_of_a_tampered_and_torn_file(trace: tuple[Path, str]) -> None:
    path, _ = trace
    tamper(path, 2)
    with open(path, "a") as f:
        f.write('{"trace_version": "1.0", "event_')
    done = verify("--json", str(path))
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["valid"] is False
    assert report["torn_tail"]["line"] == 7
    (session,) = report["sessions"]
    assert (session["error"], session["index"], session["line"]) == ("hash_mismatch", 2, 3)


def test_worst_exit_code_of_several_files(trace: tuple[Path, str], tmp_path: Path) -> None:
    path, _ = trace
    assert verify(str(path), str(tmp_path / "missing.trace.jsonl")).returncode == 2
