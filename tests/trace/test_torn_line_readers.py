"""A torn line that reopening a trace file set aside (copied to
`FILE.torn-OFFSET` and ended with a newline) is read past by every reader:
`cra trace show`, `diff` and `replay` and `cra.analysis` skip it and say so,
and `cra trace verify` reports it as a torn line, not a bad line, with the
file still valid when every chain verifies. A line that is not JSON with no
such copy stays a bad line, as before."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cra
import pytest
from audit_helpers import run_cli, tear, write_atlas
from cra.analysis import diff, read_trace, reconstruct, replay
from execute_helpers import Harness, ops_atlas

#: Half an event line, as a crash mid-write leaves it.
TORN = b'{"trace_version": "1.0", "event_id": "01'


@dataclass
class Reopened:
    path: Path
    atlas: Path
    #: The torn line's number, where it starts and its side file.
    line: int
    offset: int
    side: Path
    #: Events before and after the torn line.
    before: int
    after: int


def _run(path: Path, goal: str) -> int:
    """A session on a runtime writing `path`: two resolves; its event count."""
    h = Harness(ops_atlas(), trace_file=path, goal=goal)
    try:
        h.resolve()
        h.resolve()
        h.rt.end_session(h.sid, "completed")
        assert h.rt.flush(timeout=30)
        return len(h.rt.events(h.sid))
    finally:
        h.close()


@pytest.fixture
def reopened(tmp_path: Path) -> Reopened:
    path = tmp_path / "run.trace.jsonl"
    before = _run(path, "Before the crash")
    line = path.read_bytes().count(b"\n") + 1
    offset = path.stat().st_size
    tear(path, TORN)
    after = _run(path, "After the crash")
    side = tmp_path / f"run.trace.jsonl.torn-{offset}"
    assert side.read_bytes() == TORN, "the runtime set the torn line aside"
    assert path.read_bytes().split(b"\n")[line - 1] == TORN, "and kept it in the file"
    atlas = write_atlas(tmp_path / "ops.json", ops_atlas())
    return Reopened(path, atlas, line, offset, side, before, after)


def _note(r: Reopened) -> str:
    return f"line {r.line}: torn write from a crash, copied to {r.side}"


def test_show_skips_the_torn_line_and_says_so(reopened: Reopened) -> None:
    p = run_cli("trace", "show", reopened.path, "--no-color")
    assert p.returncode == 0, p.stderr
    assert len(p.stdout.splitlines()) == reopened.before + reopened.after
    assert "goal=Before the crash" in p.stdout and "goal=After the crash" in p.stdout
    assert f"note: {reopened.path}: {_note(reopened)}; skipped" in p.stderr
    assert "Traceback" not in p.stderr


def test_diff_against_itself_reads_past_the_torn_line(reopened: Reopened) -> None:
    p = run_cli("trace", "diff", "--json", reopened.path, reopened.path)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {"compatibility": "identical", "differences": []}
    assert p.stderr.count(_note(reopened)) == 1
    p = run_cli("trace", "diff", reopened.path, reopened.path)
    assert p.returncode == 0, p.stderr
    assert "diff: identical (0 difference(s))" in p.stdout


def test_replay_reads_past_the_torn_line(reopened: Reopened) -> None:
    p = run_cli("trace", "replay", "--atlas", reopened.atlas, reopened.path)
    assert p.returncode == 0, p.stderr
    assert "replay: IDENTICAL — 4 of 4 requests match" in p.stdout
    assert _note(reopened) in p.stderr


def test_the_analysis_api_reads_past_the_torn_line(reopened: Reopened) -> None:
    assert diff(reopened.path, reopened.path).compatibility == "identical"
    report = replay(reopened.path, [reopened.atlas])
    assert report.identical and report.matched == 4
    states = reconstruct(reopened.path)
    assert isinstance(states, list) and len(states) == 2


def test_verify_reports_the_torn_line_apart_and_the_file_valid(reopened: Reopened) -> None:
    report = cra.verify_jsonl(reopened.path)
    assert report.valid
    assert (report.bad_lines, report.bad_line_count) == ([], 0)
    assert report.torn_lines == [(reopened.line, reopened.offset, len(TORN), str(reopened.side))]
    assert report.torn_line_count == 1
    assert report.event_count == reopened.before + reopened.after

    p = run_cli("trace", "verify", reopened.path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"{reopened.path}: VALID — 2 session(s)" in p.stdout
    assert "1 torn line(s) set aside" in p.stdout
    assert f"  torn  {_note(reopened)} (not an event; skipped)" in p.stdout
    assert "FAIL" not in p.stdout

    p = run_cli("trace", "verify", "--json", reopened.path)
    assert p.returncode == 0, p.stdout + p.stderr
    doc = json.loads(p.stdout)
    assert doc["valid"] is True
    assert (doc["bad_lines"], doc["bad_line_count"], doc["torn_tail"]) == ([], 0, None)
    assert doc["torn_lines"] == [
        {
            "line": reopened.line,
            "offset": reopened.offset,
            "bytes": len(TORN),
            "side_file": str(reopened.side),
        }
    ]
    assert doc["torn_line_count"] == 1


def test_a_bad_line_without_its_copy_fails_as_before(reopened: Reopened) -> None:
    reopened.side.unlink()
    line = reopened.line
    p = run_cli("trace", "show", reopened.path, "--no-color")
    assert p.returncode == 2
    # The string the torn line leaves open runs into its newline.
    assert (
        f"{reopened.path}: line {line}: not JSON: Invalid control character at column 41"
        in p.stderr
    ), p.stderr
    assert "at at" not in p.stderr
    for args in (
        ("diff", reopened.path, reopened.path),
        ("replay", "--atlas", reopened.atlas, reopened.path),
    ):
        p = run_cli("trace", *args)
        assert p.returncode == 2, p.stderr
        assert f"{reopened.path}: line {line}: not JSON" in p.stderr, p.stderr
        assert "torn write" not in p.stderr
    with pytest.raises(cra.CraError, match="not JSON"):
        diff(reopened.path, reopened.path)

    p = run_cli("trace", "verify", "--json", reopened.path)
    assert p.returncode == 1
    doc = json.loads(p.stdout)
    assert doc["valid"] is False
    assert [b["line"] for b in doc["bad_lines"]] == [line]
    assert (doc["torn_lines"], doc["torn_line_count"]) == ([], 0)
    p = run_cli("trace", "verify", reopened.path)
    assert p.returncode == 1
    assert f"  FAIL  line {line}: not a TRACE event" in p.stdout


def test_a_copy_of_other_bytes_is_no_copy(reopened: Reopened) -> None:
    reopened.side.write_bytes(TORN[:-1])
    report = cra.verify_jsonl(reopened.path)
    assert not report.valid
    assert (report.bad_line_count, report.torn_lines) == (1, [])
    p = run_cli("trace", "show", reopened.path, "--no-color")
    assert p.returncode == 2
    assert f"line {reopened.line}: not JSON" in p.stderr


def test_show_names_a_bad_character_once(tmp_path: Path) -> None:
    path = tmp_path / "bad.trace.jsonl"
    path.write_bytes(b'{"event_type": "x\ty"}\n')
    p = run_cli("trace", "show", path)
    assert p.returncode == 2
    assert f"{path}: line 1: not JSON: Invalid control character at column 18" in p.stderr
    assert "at at" not in p.stderr


def test_a_bad_line_after_the_torn_line_is_named_by_its_own_number(reopened: Reopened) -> None:
    with open(reopened.path, "ab") as f:
        f.write(b'{"event_type": "x.no_ids"}\n')
    last = reopened.path.read_bytes().count(b"\n")
    for args in (
        ("diff", reopened.path, reopened.path),
        ("replay", "--atlas", reopened.atlas, reopened.path),
    ):
        p = run_cli("trace", *args)
        assert p.returncode == 2, p.stderr
        assert f"{reopened.path}: line {last}: " in p.stderr, p.stderr
        assert f"line {reopened.line}:" not in p.stderr
    p = run_cli("trace", "verify", "--json", reopened.path)
    doc = json.loads(p.stdout)
    assert [b["line"] for b in doc["bad_lines"]] == [last]
    assert [t["line"] for t in doc["torn_lines"]] == [reopened.line]
    assert doc["valid"] is False


def test_read_trace_skips_the_torn_line(reopened: Reopened) -> None:
    texts = read_trace(reopened.path)
    assert len(texts) == reopened.before + reopened.after
    assert TORN.decode() not in texts
    assert all(json.loads(t)["event_id"] for t in texts)
    # Its output reads as the file does.
    assert diff(texts, reopened.path).compatibility == "identical"
    assert replay(texts, [reopened.atlas]).matched == 4
    assert len(reconstruct(texts)) == 2
    # The file keeps the torn line; without its copy it is read, and fails.
    assert reopened.path.read_bytes().split(b"\n")[reopened.line - 1] == TORN
    reopened.side.unlink()
    assert TORN.decode() in read_trace(reopened.path)
    with pytest.raises(cra.CraError, match="not JSON"):
        diff(read_trace(reopened.path), reopened.path)
