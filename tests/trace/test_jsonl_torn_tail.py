"""Opening a JSON Lines trace never rewrites it (issue 13, finding 7): a torn
last line is copied to a side file (`<file>.torn-<offset>`) and ended with a
newline, so every original byte stays, the verifier reports the torn line by
number as set aside (not a bad line: the file stays valid), and the events
after it are read as usual. Through the runtime's file
sink and through `JSONLStore`."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cra
import pytest
from audit_helpers import run_cli
from cra.storage import JSONLStore

#: Half an event line, as a crash mid-write leaves it.
TORN = b'{"event_hash": "9f86d081884c7d659a2feaa0c55ad015", "event_id": "01'


def side_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if ".torn-" in p.name)


def tear(path: Path) -> tuple[bytes, int]:
    """Appends `TORN` to the file; returns its bytes and where the torn line starts."""
    offset = path.stat().st_size
    with open(path, "ab") as f:
        f.write(TORN)
    return path.read_bytes(), offset


def test_the_runtime_keeps_a_torn_tail_and_copies_it_to_a_side_file(tmp_path: Path) -> None:
    path = tmp_path / "run.trace.jsonl"
    with cra.Runtime(trace_file=path) as rt:
        first = rt.create_session(agent_id="before", goal="crash")
        for i in range(4):
            rt.record(first, "x.tick", {"i": i})
    lines = path.read_bytes().count(b"\n")
    before, offset = tear(path)

    with cra.Runtime(trace_file=path) as rt:
        assert rt.stats()["repaired_bytes"] == len(TORN)
        second = rt.create_session(agent_id="after", goal="append after the torn line")
        rt.record(second, "x.tick", {})
        assert rt.flush(timeout=30)

    after = path.read_bytes()
    assert after.startswith(before), "every original byte stays where it was"
    assert after[len(before) : len(before) + 1] == b"\n"
    assert side_files(tmp_path) == [tmp_path / f"run.trace.jsonl.torn-{offset}"]
    assert side_files(tmp_path)[0].read_bytes() == TORN

    side = tmp_path / f"run.trace.jsonl.torn-{offset}"
    report = cra.verify_jsonl(path)
    assert report.torn_tail is None
    assert (report.bad_lines, report.bad_line_count) == ([], 0)
    assert report.torn_lines == [(lines + 1, offset, len(TORN), str(side))]
    assert report.torn_line_count == 1
    assert report.valid
    assert {sid: v.event_count for sid, v in report.sessions.items()} == {first: 5, second: 2}
    assert all(v.valid for v in report.sessions.values())

    cli = run_cli("trace", "verify", path)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert f"line {lines + 1}: torn write from a crash, copied to {side}" in cli.stdout
    assert "not a TRACE event" not in cli.stdout
    assert "Traceback" not in cli.stdout + cli.stderr
    cli = run_cli("trace", "verify", "--json", path)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    file_report = json.loads(cli.stdout)
    assert file_report["valid"] is True
    assert file_report["torn_tail"] is None
    assert file_report["bad_lines"] == []
    assert [t["line"] for t in file_report["torn_lines"]] == [lines + 1]
    assert file_report["torn_lines"][0]["side_file"] == str(side)

    # A second open finds the line already ended: nothing more is set aside.
    ended = path.read_bytes()
    with cra.Runtime(trace_file=path) as rt:
        assert rt.stats()["repaired_bytes"] == 0
        rt.record(rt.create_session(agent_id="again", goal="g"), "x.tick", {})
    assert path.read_bytes().startswith(ended)
    assert len(side_files(tmp_path)) == 1


def test_the_jsonl_store_keeps_a_torn_tail_and_copies_it_to_a_side_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "traces"
    store = JSONLStore(directory)
    with cra.Runtime(sinks=[store]) as rt:
        sid = rt.create_session("agent-1", "Work")
        for i in range(4):
            rt.record(sid, "x.tick", {"i": i})
        rt.flush()
        recorded = [e.to_dict() for e in rt.events(sid)]
    store.close()
    path = store.path_of(sid)
    lines = path.read_bytes().count(b"\n")
    before, offset = tear(path)

    with caplog.at_level(logging.WARNING, logger="cra.storage"):
        store = JSONLStore(directory)
    side = directory / f"{sid}.trace.jsonl.torn-{offset}"
    assert path.read_bytes() == before + b"\n"
    assert store.repaired == [(str(path), len(TORN))]
    assert store.torn_files == [(str(path), str(side))]
    assert str(side) in caplog.text
    assert side_files(directory) == [side]
    assert side.read_bytes() == TORN
    # The store reads the events around the torn line, and nothing of it.
    assert store.events(sid) == recorded
    assert store.verify(sid).valid

    with cra.Runtime(sinks=[store]) as rt:
        store.resume(rt, sid)
        rt.record(sid, "x.after", {})
        rt.flush()
    store.close()
    assert path.read_bytes().startswith(before + b"\n")
    last = store.events(sid)[-1]
    assert (last["sequence"], last["previous_event_hash"]) == (5, recorded[-1]["event_hash"])
    assert store.verify(sid).valid

    report = cra.verify_jsonl(path)
    assert report.torn_tail is None
    assert report.bad_lines == []
    assert report.torn_lines == [(lines + 1, offset, len(TORN), str(side))]
    assert report[sid].valid and report[sid].event_count == 6
    assert report.valid
    cli = run_cli("trace", "verify", path)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert f"line {lines + 1}: torn write from a crash, copied to {side}" in cli.stdout
    assert "not a TRACE event" not in cli.stdout
    assert "Traceback" not in cli.stdout + cli.stderr

    # Opened again: nothing more to set aside, and the same events.
    again = JSONLStore(directory)
    assert (again.repaired, again.torn_files) == ([], [])
    assert again.events(sid) == store.events(sid)
    assert again.verify(sid).valid
    assert side_files(directory) == [side]


def test_the_jsonl_store_splits_lines_on_newline_only(tmp_path: Path) -> None:
    directory = tmp_path / "traces"
    store = JSONLStore(directory)
    with cra.Runtime(sinks=[store]) as rt:
        sid = rt.create_session("agent-1", "Work")
        rt.record(sid, "x.note", {"text": "one\u2028two\u2029three\x85four"})
        rt.flush()
        recorded = [e.to_dict() for e in rt.events(sid)]
    store.close()
    path = store.path_of(sid)
    # Another writer may leave those separators unescaped: still one line each.
    text = path.read_text(encoding="ascii")
    for escape in ("\\u2028", "\\u2029", "\\u0085"):
        assert escape in text
        text = text.replace(escape, json.loads(f'"{escape}"'))
    path.write_text(text, encoding="utf-8")
    assert cra.verify_jsonl(path).valid

    store = JSONLStore(directory)
    assert [e["payload"] for e in store.events(sid)] == [e["payload"] for e in recorded]
    assert store.verify(sid).valid
