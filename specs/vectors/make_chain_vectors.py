"""Writes chains.json: chain-verification vectors made by an independent
reference (hashlib + json.dumps), never by cra itself.

    python specs/vectors/make_chain_vectors.py > specs/vectors/chains.json
"""

import copy
import hashlib
import json

ZEROS = "0" * 64
SESSION = "0193a0b0-0000-7000-8000-00000000005e"
TRACE = "0193a0b0-0000-7000-8000-0000000000ac"
ROOT = "0193a0b0-0000-7000-8000-0000000000f0"


def canonical(v):
    return json.dumps(v, sort_keys=True, separators=(",", ":"))


def event_hash(e):
    parts = [
        e["trace_version"], e["event_id"], e["trace_id"], e["span_id"],
        e["parent_span_id"] or "", e["session_id"], str(e["sequence"]),
        e["timestamp"], e["event_type"], canonical(e["payload"]), e["previous_event_hash"],
    ]
    return hashlib.sha256("".join(parts).encode("utf-8")).hexdigest()


def chain(payloads):
    events, prev = [], ZEROS
    for i, (etype, payload) in enumerate(payloads):
        e = {
            "trace_version": "1.0",
            "event_id": f"0193a0b0-0000-7000-8000-{i + 1:012x}",
            "trace_id": TRACE,
            "span_id": ROOT if i == 0 else f"0193a0b0-0000-7000-9000-{i:012x}",
            "parent_span_id": None if i == 0 else ROOT,
            "session_id": SESSION,
            "sequence": i,
            "timestamp": f"2026-11-21T12:00:00.{i * 250:06d}Z",
            "event_type": etype,
            "payload": payload,
            "previous_event_hash": prev,
        }
        e["event_hash"] = prev = event_hash(e)
        events.append(e)
    return events


def rehash_from(events, start):
    prev = events[start - 1]["event_hash"] if start else ZEROS
    for e in events[start:]:
        e["previous_event_hash"] = prev
        e["event_hash"] = prev = event_hash(e)


def main():
    good = chain([
        ("session.started", {"agent_id": "vector-agent", "goal": "Check the chain"}),
        ("x.tool.call", {"tool": "search", "args": {"q": "caf\u00e9 \U0001F600", "n": 3}}),
        ("x.tool.result", {"ok": True, "score": 0.1, "tiny": 1e-07, "big": 12345678901234567890}),
        ("session.ended", {"reason": "completed", "duration_ms": 12}),
    ])
    cases = [{"name": "valid-chain", "events": good, "valid": True, "error": None, "index": None}]
    cases.append({"name": "empty-chain", "events": [], "valid": True, "error": None, "index": None})

    broken = copy.deepcopy(good)
    broken[1]["previous_event_hash"] = "f" * 64  # link cut; hash left as it was
    cases.append({"name": "broken-link", "events": broken, "valid": False, "error": "chain_broken", "index": 1})

    gap = copy.deepcopy(good)
    gap[1]["sequence"] = 2
    rehash_from(gap, 1)  # every hash is right; only the numbering is wrong
    cases.append({"name": "sequence-gap", "events": gap, "valid": False, "error": "sequence_gap", "index": 1})

    tampered = copy.deepcopy(good)
    tampered[2]["payload"]["ok"] = False
    cases.append({"name": "payload-tampered", "events": tampered, "valid": False, "error": "hash_mismatch", "index": 2})

    relinked = copy.deepcopy(good)
    relinked[2]["payload"]["ok"] = False
    relinked[2]["event_hash"] = "0" * 63 + "1"
    relinked[3]["previous_event_hash"] = relinked[2]["event_hash"]
    cases.append({"name": "forged-hash", "events": relinked, "valid": False, "error": "hash_mismatch", "index": 2})

    genesis = copy.deepcopy(good)
    genesis[0]["previous_event_hash"] = "1" * 64
    rehash_from(genesis, 0)
    genesis[0]["previous_event_hash"] = "1" * 64
    cases.append({"name": "invalid-genesis", "events": genesis, "valid": False, "error": "invalid_genesis", "index": 0})

    mixed = copy.deepcopy(good)
    mixed[2]["session_id"] = "0193a0b0-0000-7000-8000-0000000000ff"
    rehash_from(mixed, 2)
    cases.append({"name": "session-changes", "events": mixed, "valid": False, "error": "session_mismatch", "index": 2})

    retraced = copy.deepcopy(good)
    retraced[3]["trace_id"] = "0193a0b0-0000-7000-8000-0000000000ad"
    rehash_from(retraced, 3)
    cases.append({"name": "trace-changes", "events": retraced, "valid": False, "error": "session_mismatch", "index": 3})

    dropped = copy.deepcopy(good)
    del dropped[1]
    cases.append({"name": "event-removed", "events": dropped, "valid": False, "error": "sequence_gap", "index": 1})

    print(json.dumps({
        "description": "TRACE/1.0 chain-verification vectors (SHA-256), made by make_chain_vectors.py",
        "cases": cases,
    }, indent=1, ensure_ascii=True))


if __name__ == "__main__":
    main()
