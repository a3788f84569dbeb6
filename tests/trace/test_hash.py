"""The TRACE/1.0 event hash: the shared vectors under SHA-256 and BLAKE3,
and recorded events checked by an independent verifier (hashlib, the
`blake3` package and json.dumps, never cra)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cra
import pytest
from conftest import ZEROS, load_vectors, read_jsonl, reference_canonical, reference_hash
from cra._core import canonical_json_text, event_hash
from cra.errors import ValidationError

VECTORS = load_vectors("hash-vectors.json")
CASES = VECTORS["cases"]
ALGORITHMS = ["sha256", "blake3"]

PAYLOADS: list[dict[str, Any]] = [
    {},
    {"k": 1},
    {"text": 'caf\u00e9 \u2014 \U0001f600 "q" \\ \n\t\x01\x7f', "lone": "\ud800"},
    {"floats": [0.1, 1e-7, 1e16, 2.0, -0.0, 5e-324, 1.7976931348623157e308]},
    {"ints": [0, -1, 2**63, -(2**64) - 1, 10**40]},
    {"nested": {"b": [1, {"z": None, "a": True}], "a": ()}, "B": False},
]


def core_hash(algorithm: str, event: dict[str, Any], canonical_payload: str) -> str:
    return event_hash(
        algorithm,
        event["trace_version"],
        event["event_id"],
        event["trace_id"],
        event["span_id"],
        event["parent_span_id"],
        event["session_id"],
        event["sequence"],
        event["timestamp"],
        event["event_type"],
        canonical_payload,
        event["previous_event_hash"],
    )


def test_vector_file_has_the_cases_the_protocol_names() -> None:
    assert VECTORS["genesis"] == ZEROS
    assert len(CASES) >= 6
    assert "single-event-genesis" in {c["name"] for c in CASES}


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_vector_canonical_payload(case: dict[str, Any]) -> None:
    payload = case["event"]["payload"]
    assert cra.canonical_json(payload) == case["canonical_payload"]
    assert canonical_json_text(json.dumps(payload)) == case["canonical_payload"]
    assert reference_canonical(payload) == case["canonical_payload"]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_vector_event_hash(case: dict[str, Any], algorithm: str) -> None:
    event = case["event"]
    assert core_hash(algorithm, event, case["canonical_payload"]) == case[algorithm]
    assert core_hash(algorithm, event, cra.canonical_json(event["payload"])) == case[algorithm]
    assert reference_hash(event, algorithm) == case[algorithm]


def test_unknown_algorithm_is_refused() -> None:
    event = CASES[0]["event"]
    with pytest.raises(ValidationError) as exc:
        core_hash("md5", event, CASES[0]["canonical_payload"])
    assert exc.value.code == "INVALID_OPTION"
    with pytest.raises(ValidationError):
        cra.Runtime(hash_algorithm="md5")


def record_session(rt: cra.Runtime) -> str:
    sid = rt.create_session(agent_id="hash-agent", goal="caf\u00e9 \U0001f600")
    for i, payload in enumerate(PAYLOADS):
        rt.record(sid, f"x.step.{i}", payload)
    rt.end_session(sid, "done")
    assert rt.flush(timeout=10)
    return sid


def check_independently(events: list[dict[str, Any]], algorithm: str) -> None:
    """Recomputes every hash and link of one chain without cra."""
    prev = ZEROS
    for seq, e in enumerate(events):
        assert e["sequence"] == seq
        assert e["previous_event_hash"] == prev
        assert e["event_hash"] == reference_hash(e, algorithm)
        prev = e["event_hash"]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_recorded_events_verify_independently(algorithm: str) -> None:
    with cra.Runtime(hash_algorithm=algorithm) as rt:
        assert rt.hash_algorithm == algorithm
        sid = record_session(rt)
        events = rt.events(sid)
        assert len(events) == len(PAYLOADS) + 2
        check_independently([e.to_dict() for e in events], algorithm)
        for e, payload in zip(events[1:], PAYLOADS):
            assert e.canonical_payload == reference_canonical(payload)
        v = rt.verify(sid)
        assert v.valid and v.algorithm == algorithm and v.event_count == len(events)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_written_file_verifies_independently(tmp_path: Path, algorithm: str) -> None:
    path = tmp_path / "h.trace.jsonl"
    with cra.Runtime(hash_algorithm=algorithm, trace_file=path) as rt:
        sid = record_session(rt)
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and all(line.isascii() for line in lines)
    events = read_jsonl(path)
    check_independently(events, algorithm)
    report = cra.verify_jsonl(path)
    assert report.valid
    assert report[sid].algorithm == algorithm


def test_verifier_detects_the_algorithm_from_event_zero(tmp_path: Path) -> None:
    with cra.Runtime(hash_algorithm="blake3") as rt:
        sid = record_session(rt)
        rt.export_jsonl(tmp_path / "b.trace.jsonl")
    events = read_jsonl(tmp_path / "b.trace.jsonl")
    # A chain hashed with SHA-256 from event 1 on is not a BLAKE3 chain.
    events[1]["event_hash"] = reference_hash(events[1], "sha256")
    with open(tmp_path / "mixed.trace.jsonl", "w") as f:
        f.writelines(json.dumps(e) + "\n" for e in events)
    report = cra.verify_jsonl(tmp_path / "mixed.trace.jsonl")[sid]
    assert (report.algorithm, report.error, report.index) == ("blake3", "hash_mismatch", 1)
