"""Chains: the shared chain vectors, tampering with a recorded session,
files holding several sessions, torn and malformed lines, and the shape
TRACE/1.0 gives every event (sequence, genesis, ids, spans, timestamps)."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any, Callable

import cra
import pytest
from conftest import (
    ZEROS,
    load_vectors,
    read_jsonl,
    reference_hash,
    rehash_from,
    write_jsonl,
)
from cra._core import verify_chain_json

CASES = load_vectors("chains.json")["cases"]
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def one_session(case: dict[str, Any]) -> bool:
    return len({e["session_id"] for e in case["events"]}) <= 1


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_vector_as_one_chain(case: dict[str, Any]) -> None:
    r = verify_chain_json([json.dumps(e) for e in case["events"]])
    assert (r.valid, r.error, r.index) == (case["valid"], case["error"], case["index"])
    assert r.event_count == len(case["events"])


@pytest.mark.parametrize(
    "case", [c for c in CASES if one_session(c)], ids=[c["name"] for c in CASES if one_session(c)]
)
def test_vector_as_a_file(tmp_path: Path, case: dict[str, Any]) -> None:
    report = cra.verify_jsonl(write_jsonl(tmp_path / "v.trace.jsonl", case["events"]))
    assert report.valid == case["valid"]
    assert report.torn_tail is None and report.bad_lines == []
    assert len(report) == (1 if case["events"] else 0)
    for v in report.sessions.values():
        assert (v.valid, v.error, v.index) == (case["valid"], case["error"], case["index"])
        assert v.event_count == len(case["events"])
        if case["index"] is not None:
            assert v.line == case["index"] + 1


def test_a_changed_session_id_is_another_chain_in_a_file(tmp_path: Path) -> None:
    # In a file, the session id says which chain an event belongs to: the
    # stray event starts a chain of its own, and both chains are faulty.
    case = next(c for c in CASES if c["name"] == "session-changes")
    events = case["events"]
    report = cra.verify_jsonl(write_jsonl(tmp_path / "v.trace.jsonl", events))
    assert not report.valid
    original, stray = report[events[0]["session_id"]], report[events[2]["session_id"]]
    assert (original.error, original.index, original.line) == ("sequence_gap", 2, 4)
    assert (stray.error, stray.index, stray.line) == ("invalid_genesis", 0, 3)


# -- tampering with a recorded session ------------------------------------


@pytest.fixture
def exported(runtime: cra.Runtime, tmp_path: Path) -> tuple[Path, list[dict[str, Any]], str]:
    """A real session of 8 events (plus another session) exported to a file."""
    sid = runtime.create_session(agent_id="tamper", goal="be checked")
    other = runtime.create_session(agent_id="other", goal="be swapped in")
    for i in range(6):
        runtime.record(sid, "x.step", {"i": i, "note": "caf\u00e9"})
    runtime.end_session(sid)
    path = tmp_path / "session.trace.jsonl"
    assert runtime.export_jsonl(path, session_id=sid) == 8
    assert cra.verify_jsonl(path).valid
    trace_id = runtime.get_session(other)["trace_id"]
    return path, read_jsonl(path), trace_id


def edit_payload(events: list[dict[str, Any]], _: str) -> None:
    events[3]["payload"]["i"] = 99


def delete_line(events: list[dict[str, Any]], _: str) -> None:
    del events[3]


def relink(events: list[dict[str, Any]], _: str) -> None:
    events[3]["previous_event_hash"] = "ab" * 32
    events[3]["event_hash"] = reference_hash(events[3])
    rehash_from(events, 4)


def swap_session(events: list[dict[str, Any]], other_trace: str) -> None:
    events[3]["trace_id"] = other_trace
    rehash_from(events, 3)


def break_genesis(events: list[dict[str, Any]], _: str) -> None:
    events[0]["previous_event_hash"] = "1" * 64
    rehash_from(events, 0)
    events[0]["previous_event_hash"] = "1" * 64


@pytest.mark.parametrize(
    "tamper, kind, index",
    [
        (edit_payload, "hash_mismatch", 3),
        (delete_line, "sequence_gap", 3),
        (relink, "chain_broken", 3),
        (swap_session, "session_mismatch", 3),
        (break_genesis, "invalid_genesis", 0),
    ],
)
def test_tampering_is_found_where_it_was_done(
    exported: tuple[Path, list[dict[str, Any]], str],
    tamper: Callable[[list[dict[str, Any]], str], None],
    kind: str,
    index: int,
) -> None:
    path, events, other_trace = exported
    tamper(events, other_trace)
    write_jsonl(path, events)
    report = cra.verify_jsonl(path)
    assert not report.valid
    (v,) = report.sessions.values()
    assert (v.valid, v.error, v.index, v.line) == (False, kind, index, index + 1)
    assert v.message


# -- files ----------------------------------------------------------------


def test_interleaved_sessions_verify_per_session(tmp_path: Path) -> None:
    path = tmp_path / "mixed.trace.jsonl"
    with cra.Runtime(trace_file=path) as rt:
        sids = [rt.create_session(agent_id=f"agent-{n}", goal="interleave") for n in range(5)]
        for i in range(20):
            for sid in sids:
                rt.record(sid, "x.round", {"i": i})
        assert rt.flush(timeout=10)
    order = [e["session_id"] for e in read_jsonl(path)]
    assert order[:5] == sids and order[5:10] == sids  # really interleaved
    report = cra.verify_jsonl(path)
    assert report.valid and list(report) == sids
    for sid in sids:
        assert report[sid].valid and report[sid].event_count == 21


def cut_last_line(path: Path) -> tuple[int, int, int]:
    """Cuts the file in the middle of its last line; returns (line, offset, bytes)."""
    data = path.read_bytes()
    start = data.rstrip(b"\n").rfind(b"\n") + 1
    keep = (len(data) - start) // 2
    path.write_bytes(data[: start + keep])
    return data.count(b"\n"), start, keep


def test_torn_last_line_is_reported(exported: tuple[Path, list[dict[str, Any]], str]) -> None:
    path, events, _ = exported
    torn = cut_last_line(path)
    report = cra.verify_jsonl(path)
    assert report.torn_tail == torn
    assert not report.valid
    (v,) = report.sessions.values()
    assert v.valid and v.event_count == len(events) - 1


def test_malformed_middle_line_is_reported(
    exported: tuple[Path, list[dict[str, Any]], str],
) -> None:
    path, _, _ = exported
    lines = path.read_text().splitlines(keepends=True)
    lines[2] = '{"trace_version": "1.0", "event_id": \n'
    path.write_text("".join(lines))
    report = cra.verify_jsonl(path)
    assert not report.valid
    assert [n for n, _ in report.bad_lines] == [3] and report.bad_line_count == 1
    assert report.torn_tail is None
    (v,) = report.sessions.values()
    assert (v.error, v.index) == ("sequence_gap", 2)


def test_empty_file_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "empty.trace.jsonl"
    path.write_bytes(b"")
    report = cra.verify_jsonl(path)
    assert report.valid and len(report) == 0 and report.lines == 0
    assert report.torn_tail is None and report.bad_lines == []


# -- the shape of recorded events -----------------------------------------


def is_v7(text: str) -> bool:
    return text == text.lower() and str(uuid.UUID(text)) == text and uuid.UUID(text).version == 7


def test_events_have_the_protocol_shape(runtime: cra.Runtime) -> None:
    sid = runtime.create_session(agent_id="shape", goal="look right")
    for i in range(50):
        runtime.record(sid, "x.step", {"i": i})
    runtime.end_session(sid, "finished")
    session = runtime.get_session(sid)
    events = [e.to_dict() for e in runtime.events(sid)]

    assert [e["sequence"] for e in events] == list(range(52))
    assert events[0]["previous_event_hash"] == ZEROS
    assert {e["trace_id"] for e in events} == {session["trace_id"]}
    assert {e["session_id"] for e in events} == {sid}
    assert {e["trace_version"] for e in events} == {"1.0"}

    started, steps, ended = events[0], events[1:-1], events[-1]
    assert started["event_type"] == "session.started"
    assert started["payload"] == {"agent_id": "shape", "goal": "look right"}
    assert started["parent_span_id"] is None
    assert started["span_id"] == session["root_span_id"]
    assert [e["payload"]["i"] for e in steps] == list(range(50))  # the caller's order
    for e in [*steps, ended]:
        assert e["parent_span_id"] == session["root_span_id"]
        assert e["span_id"] != session["root_span_id"]
    assert len({e["span_id"] for e in events}) == len(events)
    assert ended["event_type"] == "session.ended"
    assert ended["payload"]["reason"] == "finished"
    assert isinstance(ended["payload"]["duration_ms"], int)

    for e in events:
        assert TIMESTAMP.match(e["timestamp"]), e["timestamp"]
        for key in ("event_id", "trace_id", "span_id", "session_id"):
            assert is_v7(e[key]), (key, e[key])
    assert len({e["event_id"] for e in events}) == len(events)


def test_parent_session_id_goes_into_session_started(runtime: cra.Runtime) -> None:
    parent = runtime.create_session(agent_id="parent", goal="delegate")
    child_id = str(uuid.uuid4()).upper()  # callers may give any UUID
    sid = runtime.create_session(
        agent_id="child", goal="help", session_id=child_id, parent_session_id=parent
    )
    assert sid == child_id.lower()
    (started,) = runtime.events(sid)
    assert started.payload == {"agent_id": "child", "goal": "help", "parent_session_id": parent}
    assert runtime.verify(sid).valid
