"""Signed checkpoints and Merkle proofs (issue 14):

- verify with signatures, in memory: `Runtime.verify(sid, public_key=)` over
  a session of `VERIFY_EVENTS` events signed every 1,000 (events/s in the
  summary; the goal is at least 1 M/s);
- the same chain verified without the key, for comparison;
- an inclusion proof of the middle event of a `VERIFY_EVENTS`-event trace
  file, and its offline check; a consistency proof between the first and
  the last checkpoint, and its check.

The per-event cost of signing on the flush thread is measured by the
criterion group `seal_signed` (`cargo bench --bench trace_core`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Tuple

import cra
import pytest
from conftest import PAYLOAD, VERIFY_EVENTS
from cra import _core


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    tmp = tmp_path_factory.mktemp("checkpoints")
    key = tmp / "key"
    _core.generate_signing_key(str(key))
    trace = tmp / "signed.trace.jsonl"
    rt = cra.Runtime(trace_file=trace, signing_key=key, memory_limit=VERIFY_EVENTS * 2)
    sid = rt.create_session("bench", "verify")
    record = rt.record
    for _ in range(VERIFY_EVENTS):
        record(sid, "x.tool.call", PAYLOAD)
    rt.end_session(sid)
    assert rt.flush(timeout=600)
    events = rt.events(sid)
    cps = [e for e in events if e.event_type == "trace.checkpoint"]
    middle = events[len(events) // 2].event_id
    return {
        "rt": rt,
        "sid": sid,
        "pub": Path(f"{key}.pub"),
        "trace": trace,
        "events": len(events),
        "middle": middle,
        "cps": (cps[0].sequence, cps[-1].sequence),
    }


def bench_verify_with_signatures_in_memory(benchmark: Any, signed: Dict[str, Any]) -> None:
    rt, sid, pub = signed["rt"], signed["sid"], signed["pub"]
    v = benchmark.pedantic(lambda: rt.verify(sid, public_key=pub), rounds=3, iterations=1)
    assert v.valid and v.signatures["coverage"] == 1.0
    benchmark.extra_info["events"] = signed["events"]
    benchmark.extra_info["events_per_s"] = round(signed["events"] / benchmark.stats["median"])


def bench_verify_without_signatures_in_memory(benchmark: Any, signed: Dict[str, Any]) -> None:
    rt, sid = signed["rt"], signed["sid"]
    v = benchmark.pedantic(lambda: rt.verify(sid), rounds=3, iterations=1)
    assert v.valid
    benchmark.extra_info["events_per_s"] = round(signed["events"] / benchmark.stats["median"])


def _proofs(signed: Dict[str, Any]) -> Tuple[str, str]:
    inclusion = _core.prove_inclusion(str(signed["trace"]), signed["middle"])
    first, last = signed["cps"]
    consistency = _core.prove_consistency(str(signed["trace"]), first, last)
    return inclusion, consistency


def bench_inclusion_proof_generation(benchmark: Any, signed: Dict[str, Any]) -> None:
    proof = benchmark.pedantic(
        lambda: _core.prove_inclusion(str(signed["trace"]), signed["middle"]),
        rounds=2,
        iterations=1,
    )
    assert json.loads(proof)["tree_size"] >= signed["events"] - 1


def bench_consistency_proof_generation(benchmark: Any, signed: Dict[str, Any]) -> None:
    first, last = signed["cps"]
    proof = benchmark.pedantic(
        lambda: _core.prove_consistency(str(signed["trace"]), first, last),
        rounds=2,
        iterations=1,
    )
    assert json.loads(proof)["first_size"] < json.loads(proof)["second_size"]


def bench_proof_verification(benchmark: Any, signed: Dict[str, Any]) -> None:
    inclusion, consistency = _proofs(signed)
    pub = str(signed["pub"])

    def both() -> None:
        _core.verify_proof(inclusion, pub)
        _core.verify_proof(consistency, pub)

    benchmark(both)
