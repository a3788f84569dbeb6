"""Replay, diff and reconstruction of a `.trace.jsonl` path stream the file
through the core (issue #5): each line is read and parsed once there, never
held in Python, and what the replay engine holds does not grow with the
trace. No timing here; speed and memory figures are in benches/bench_replay.py."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cra
import cra.analysis
import pytest
from audit_helpers import (
    GOVERNED_OUTCOMES,
    GovernedRun,
    governed_session,
    run_cli,
    stricter_atlas,
    write_atlas,
    write_trace,
)
from execute_helpers import Harness, ops_atlas

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture(scope="module")
def governed() -> Iterator[GovernedRun]:
    with Harness() as h:
        run = governed_session(h)
        assert run.outcomes == GOVERNED_OUTCOMES
        yield run


@pytest.fixture
def no_python_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails any attempt to read a trace file into Python (what the old
    implementation did before handing the lines to the core)."""

    def refuse(trace: Any) -> list[str]:
        if isinstance(trace, (str, Path)):
            raise AssertionError(f"{trace} was read in Python")
        return original(trace)

    original = cra.analysis.read_trace
    monkeypatch.setattr(cra.analysis, "read_trace", refuse)


def copies(lines: list[str], n: int) -> list[str]:
    """`n` copies of a session, each with fresh session, span and other ids
    (replay does not check hashes; each copy is a session of its own)."""
    out: list[str] = []
    text = "\n".join(lines)
    ids = sorted(set(UUID.findall(text)))
    for _ in range(n):
        fresh = {old: str(uuid.uuid4()) for old in ids}
        out.extend(UUID.sub(lambda m, fresh=fresh: fresh[m.group(0)], text).split("\n"))
    return out


def long_trace(path: Path, run: GovernedRun, sessions: int) -> tuple[Path, int]:
    lines = copies([e.to_json() for e in run.events], sessions)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, len(lines)


# -- replay ----------------------------------------------------------------------------


def test_replay_of_a_path_is_streamed_by_the_core_with_the_same_report(
    governed: GovernedRun, tmp_path: Path, no_python_reading: None
) -> None:
    path = write_trace(tmp_path / "run.trace.jsonl", governed.events)
    from_file = cra.replay(path, [ops_atlas()])
    from_list = cra.replay(governed.events, [ops_atlas()])
    assert from_file == from_list
    assert from_file.identical and from_file.request_count == len(from_file.requests) == 4
    assert from_file.stats["events"] == len(governed.events)


def test_the_replay_engine_holds_a_bounded_number_of_events(
    governed: GovernedRun, tmp_path: Path
) -> None:
    """200 sessions, 8,000+ events: the engine streaming the file never
    holds more than the event being read and one open resolve, where a list
    (the old way, for a file too) holds every event."""
    path, n = long_trace(tmp_path / "long.trace.jsonl", governed, 200)
    streamed = cra.replay(path, [ops_atlas()])
    assert streamed.identical
    assert streamed.request_count == 200 * 4
    assert streamed.executions_counted == 200 * governed_executions(governed)
    assert streamed.stats["events"] == n > 8_000
    assert streamed.stats["peak_events_held"] <= 2
    assert streamed.stats["peak_open_executes"] <= 1
    listed = cra.replay(path.read_text(encoding="utf-8").splitlines(), [ops_atlas()])
    assert listed == streamed
    assert listed.stats["peak_events_held"] == n


def governed_executions(run: GovernedRun) -> int:
    return sum(e.event_type in ("action.executed", "action.failed") for e in run.events)


def test_interleaved_sessions_and_a_cut_short_resolve_stream_alike(
    governed: GovernedRun, tmp_path: Path
) -> None:
    """Two copies of the session interleaved line by line, the last resolve's
    completion missing: the same report from the file and from the list."""
    a, b = (
        copies([e.to_json() for e in governed.events], 1),
        copies([e.to_json() for e in governed.events], 1),
    )
    lines = [x for pair in zip(a, b) for x in pair]
    last = max(i for i, t in enumerate(lines) if '"carp.resolution.completed"' in t)
    del lines[last]
    path = tmp_path / "mixed.trace.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    streamed = cra.replay(path, [ops_atlas()])
    assert streamed == cra.replay(lines, [ops_atlas()])
    assert not streamed.identical
    cut = streamed.requests[-1]
    assert [(m["field"], m["recorded"]) for m in cut.mismatches] == [("decision_type", None)]
    assert sum(not r.matches for r in streamed.requests) == 1


def one_altered(run: GovernedRun, path: Path) -> Path:
    """The run with the first resolve's recorded `allowed_count` changed
    (replay does not check hashes): one request of four does not match."""
    events = [e.to_dict() for e in run.events]
    first = next(e for e in events if e["event_type"] == "carp.resolution.completed")
    first["payload"]["allowed_count"] += 1
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return path


def test_only_mismatches_keeps_the_counts(governed: GovernedRun, tmp_path: Path) -> None:
    path = one_altered(governed, tmp_path / "run.trace.jsonl")
    full = cra.replay(path, [ops_atlas()])
    lean = cra.replay(path, [ops_atlas()], keep_matching=False)
    assert (full.matched, full.mismatched) == (3, 1)
    assert lean.requests == [r for r in full.requests if not r.matches]
    assert (lean.matched, lean.mismatched, lean.request_count) == (3, 1, 4)
    assert lean.identical == full.identical is False
    strict = cra.replay(path, [stricter_atlas()], keep_matching=False)
    assert (strict.matched, strict.mismatched, len(strict.requests)) == (0, 4, 4)


def test_progress_is_reported_up_to_the_file_size(governed: GovernedRun, tmp_path: Path) -> None:
    path = write_trace(tmp_path / "run.trace.jsonl", governed.events)
    seen: list[int] = []
    cra.replay(path, [ops_atlas()], progress=seen.append)
    assert seen and seen[-1] == path.stat().st_size
    assert seen == sorted(seen)


def test_blank_lines_are_skipped_and_bad_lines_are_indexed_by_event(
    governed: GovernedRun, tmp_path: Path
) -> None:
    lines = [e.to_json() for e in governed.events]
    path = tmp_path / "blank.trace.jsonl"
    path.write_text("\n".join([*lines[:2], "", "   ", *lines[2:]]) + "\n", encoding="utf-8")
    assert cra.replay(path, [ops_atlas()]) == cra.replay(lines, [ops_atlas()])
    bad = dict(json.loads(lines[4]))
    del bad["span_id"]
    path.write_text(
        "\n".join([*lines[:2], "", *lines[2:4], json.dumps(bad)]) + "\n", encoding="utf-8"
    )
    with pytest.raises(cra.errors.IntegrityError) as e:
        cra.replay(path, [ops_atlas()])
    assert e.value.code == "TRACE_INVALID"
    assert "event 4 has no string span_id" in e.value.message


def test_the_cli_lists_only_mismatches_on_request(governed: GovernedRun, tmp_path: Path) -> None:
    path = one_altered(governed, tmp_path / "run.trace.jsonl")
    atlas = write_atlas(tmp_path / "ops.json", ops_atlas())
    full = run_cli("trace", "replay", path, "--atlas", atlas)
    lean = run_cli("trace", "replay", path, "--atlas", atlas, "--only-mismatches")
    assert full.returncode == lean.returncode == 1
    assert full.stdout.count("  ok   request") == 3
    assert lean.stdout.count("  ok   request") == 0
    assert lean.stdout.count("DIFF request") == full.stdout.count("DIFF request") == 1
    assert full.stdout.splitlines()[-1] == lean.stdout.splitlines()[-1]
    doc = json.loads(
        run_cli("trace", "replay", path, "--atlas", atlas, "--only-mismatches", "--json").stdout
    )
    assert (doc["matched"], doc["mismatched"], len(doc["requests"])) == (3, 1, 1)


# -- diff and reconstruction -------------------------------------------------------------


def test_diff_of_two_paths_is_walked_in_step(
    governed: GovernedRun, tmp_path: Path, no_python_reading: None
) -> None:
    events = governed.events
    a = write_trace(tmp_path / "a.trace.jsonl", events)
    b = write_trace(tmp_path / "b.trace.jsonl", events[:-3])
    d = cra.diff(a, b)
    assert d == cra.diff(events, events[:-3])
    assert [x.type for x in d.differences] == ["removed"] * 3
    assert d.differences[0].before == json.loads(events[-3].to_json())
    assert cra.diff(b, a).differences[-1].after == json.loads(events[-1].to_json())
    assert cra.diff(a, events).compatibility == "identical"


def test_reconstruct_of_a_path_is_streamed(
    governed: GovernedRun, tmp_path: Path, no_python_reading: None
) -> None:
    path = write_trace(tmp_path / "run.trace.jsonl", governed.events)
    assert cra.reconstruct(path) == cra.reconstruct(governed.events)
    two, _ = long_trace(tmp_path / "two.trace.jsonl", governed, 2)
    states = cra.reconstruct(two)
    assert isinstance(states, list) and len(states) == 2
    assert states[0].event_count == states[1].event_count == len(governed.events)
