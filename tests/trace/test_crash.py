"""A crash: a process that flushed is killed with SIGKILL while recording
more. What it flushed still verifies, and a torn tail is reported, never
accepted; the file sink sets it aside when the file is opened again (a copy
in a side file, the line ended with a newline, no byte changed)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cra
import pytest

RECORDER = textwrap.dedent(
    """
    import itertools, json, sys
    import cra

    rt = cra.Runtime(trace_file=sys.argv[1])
    sids = [rt.create_session(agent_id=f"crash-{n}", goal="die") for n in range(3)]
    for i in range(3000):
        rt.record(sids[i % 3], "x.before", {"i": i})
    assert rt.flush(timeout=60)
    print(json.dumps({sid: len(rt.events(sid)) for sid in sids}), flush=True)
    for i in itertools.count():
        rt.record(sids[i % 3], "x.after", {"i": i, "pad": "p" * (i % 300)})
    """
)

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")


@pytest.fixture(scope="module")
def killed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """A trace file whose writer was killed mid-recording, and what it had flushed."""
    path = tmp_path_factory.mktemp("crash") / "killed.trace.jsonl"
    with subprocess.Popen(
        [sys.executable, "-c", RECORDER, str(path)], stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            flushed: dict[str, int] = json.loads(proc.stdout.readline())
            size = path.stat().st_size
            deadline = time.monotonic() + 30
            while path.stat().st_size < size + 1_000_000:  # it keeps writing
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.01)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    return path, flushed


def test_flushed_events_survive_the_kill(killed: tuple[Path, dict[str, int]]) -> None:
    path, flushed = killed
    report = cra.verify_jsonl(path)
    assert set(report) == set(flushed)
    for sid, count in flushed.items():
        assert report[sid].valid, report[sid]
        assert report[sid].event_count >= count > 1000
    assert report.bad_lines == []
    if report.torn_tail is None:
        assert report.valid
    else:
        assert not report.valid


def test_torn_tail_is_reported_and_set_aside(
    killed: tuple[Path, dict[str, int]], tmp_path: Path
) -> None:
    path, flushed = killed
    data = path.read_bytes()
    whole = data[: data.rfind(b"\n") + 1]  # what the kill left, minus any torn line
    start = whole.rstrip(b"\n").rfind(b"\n") + 1
    cut = (len(whole) - start) // 2
    copy = tmp_path / "torn.trace.jsonl"
    copy.write_bytes(whole[: start + cut])
    lines = whole.count(b"\n")

    report = cra.verify_jsonl(copy)
    assert report.torn_tail == (lines, start, cut)
    assert not report.valid
    assert all(v.valid for v in report.sessions.values())
    assert report.event_count == lines - 1

    with cra.Runtime(trace_file=copy) as rt:
        assert rt.stats()["repaired_bytes"] == cut > 0
        sid = rt.create_session(agent_id="after", goal="append after the torn line")
        rt.record(sid, "x.n", {})
    assert copy.read_bytes().startswith(whole[: start + cut] + b"\n")
    side = tmp_path / f"torn.trace.jsonl.torn-{start}"
    assert side.read_bytes() == whole[start : start + cut]
    repaired = cra.verify_jsonl(copy)
    assert repaired.torn_tail is None
    # The torn line, ended, is set aside: not a bad line, and the file is valid.
    assert repaired.bad_lines == []
    assert repaired.torn_lines == [(lines, start, cut, str(side))]
    assert all(v.valid for v in repaired.sessions.values())
    assert repaired.valid
    assert repaired.event_count == lines - 1 + 2
    assert set(flushed) <= set(repaired)


def test_a_copy_of_the_whole_file_is_not_repaired(
    killed: tuple[Path, dict[str, int]], tmp_path: Path
) -> None:
    path, _ = killed
    data = path.read_bytes()
    copy = tmp_path / "whole.trace.jsonl"
    copy.write_bytes(data[: data.rfind(b"\n") + 1])
    with cra.Runtime(trace_file=copy) as rt:
        assert rt.stats()["repaired_bytes"] == 0
    assert cra.verify_jsonl(copy).valid
