"""Signed checkpoints: `cra keys generate`, `Runtime(signing_key=...)`
sealing `trace.checkpoint` events on the flush thread, and
`verify_jsonl(..., public_key=...)` / `cra trace verify --public-key` telling
a cut, rewritten or forged trace from a whole one."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import cra
import pytest
from cra import _core
from cra.errors import ValidationError


def _keys(tmp: Path, name: str = "signing") -> Tuple[Path, Path]:
    key = tmp / name
    _core.generate_signing_key(str(key))
    return key, Path(f"{key}.pub")


def _trace(tmp: Path, key: Path, n: int = 12, every: int = 5, end: bool = True) -> Path:
    path = tmp / "t.trace.jsonl"
    rt = cra.Runtime(trace_file=path, signing_key=key, checkpoint_events=every)
    sid = rt.create_session("agent", "goal")
    for i in range(n):
        rt.record(sid, "x.step", {"i": i})
    if end:
        rt.end_session(sid)
    rt.close()
    return path


def _events(path: Path) -> List[Dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write(path: Path, events: List[Dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))


def _rehash(events: List[Dict[str, Any]]) -> None:
    """Recomputes every hash, as a forger who knows the format would."""
    prev = "0" * 64
    for e in events:
        e["previous_event_hash"] = prev
        e["event_hash"] = _core.event_hash(
            "sha256",
            e["trace_version"],
            e["event_id"],
            e["trace_id"],
            e["span_id"],
            e["parent_span_id"],
            e["session_id"],
            e["sequence"],
            e["timestamp"],
            e["event_type"],
            _core.canonical_json(e["payload"]),
            prev,
        )
        prev = e["event_hash"]


def _faults(path: Path, pub: Path) -> List[str]:
    r = cra.verify_jsonl(path, public_key=pub)
    assert r.signatures is not None
    return [f["kind"] for s in r.signatures.values() for f in s["faults"]]


def test_keys_generate_writes_a_private_and_a_public_pem(tmp_path: Path) -> None:
    key = tmp_path / "k"
    out = subprocess.run(
        [sys.executable, "-m", "cra", "keys", "generate", str(key)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert Path(f"{key}.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    key_id = _core.key_id_of(str(key))
    assert key_id == _core.key_id_of(f"{key}.pub") and key_id in out.stdout
    # Never over an existing key.
    again = subprocess.run(
        [sys.executable, "-m", "cra", "keys", "generate", str(key)],
        capture_output=True,
        text=True,
    )
    assert again.returncode != 0 and "FILE_EXISTS" in again.stderr


def test_checkpoints_are_sealed_by_count_at_flush_and_at_the_end(tmp_path: Path) -> None:
    key, pub = _keys(tmp_path)
    path = _trace(tmp_path, key, n=12, every=5)
    events = _events(path)
    cps = [e for e in events if e["event_type"] == "trace.checkpoint"]
    assert [c["sequence"] for c in cps] == [5, 11, 16]
    assert [c["payload"]["tree_size"] for c in cps] == [5, 11, 16]
    assert [c["payload"]["final"] for c in cps] == [False, False, True]
    assert events[-1]["event_type"] == "trace.checkpoint"  # the last event
    assert events[-2]["event_type"] == "session.ended"
    assert cps[0]["payload"]["key_id"] == _core.key_id_of(str(pub))
    r = cra.verify_jsonl(path, public_key=pub)
    assert r.valid and r.completeness_checked
    (s,) = r.signatures.values()  # type: ignore[union-attr]
    assert (s["checkpoints"], s["signed_events"], s["events"], s["coverage"]) == (3, 17, 17, 1.0)
    assert s["closed"] and not s["faults"]


def test_flush_seals_a_checkpoint_of_an_open_session(tmp_path: Path) -> None:
    key, pub = _keys(tmp_path)
    path = tmp_path / "open.jsonl"
    rt = cra.Runtime(trace_file=path, signing_key=key, checkpoint_events=1000)
    sid = rt.create_session("agent", "goal")
    rt.record(sid, "x.one", {})
    assert rt.flush(timeout=10)
    types = [e.event_type for e in rt.events(sid)]
    assert types == ["session.started", "x.one", "trace.checkpoint"]
    rt.close()
    r = cra.verify_jsonl(path, public_key=pub)
    assert r.valid, r.signatures


def test_without_a_key_verification_says_completeness_was_not_checked(tmp_path: Path) -> None:
    key, _ = _keys(tmp_path)
    path = _trace(tmp_path, key)
    r = cra.verify_jsonl(path)
    assert r.valid and not r.completeness_checked and r.signatures is None
    out = subprocess.run(
        [sys.executable, "-m", "cra", "trace", "verify", str(path)], capture_output=True, text=True
    )
    assert "completeness and signatures were not checked" in out.stdout


def test_a_cut_end_is_incomplete(tmp_path: Path) -> None:
    key, pub = _keys(tmp_path)
    path = _trace(tmp_path, key)
    events = _events(path)
    _write(path, events[:-4])  # session.ended, the final checkpoint and two more
    assert cra.verify_jsonl(path).valid  # the chain alone cannot tell
    assert _faults(path, pub) == ["incomplete"]
    out = subprocess.run(
        [sys.executable, "-m", "cra", "trace", "verify", str(path), "--public-key", str(pub)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1 and "incomplete" in out.stdout
    _write(path, events[:-1])  # only the final checkpoint removed
    assert _faults(path, pub) == ["incomplete"]


def test_a_rewritten_trace_is_a_checkpoint_mismatch(tmp_path: Path) -> None:
    key, pub = _keys(tmp_path)
    path = _trace(tmp_path, key)
    events = _events(path)
    events[2]["payload"]["i"] = 999  # what the agent did, changed
    _rehash(events)
    _write(path, events)
    assert cra.verify_jsonl(path).valid  # a recomputed chain verifies alone
    assert "checkpoint_mismatch" in _faults(path, pub)


def test_another_key_or_a_changed_signature_is_signature_invalid(tmp_path: Path) -> None:
    key, pub = _keys(tmp_path)
    _, other_pub = _keys(tmp_path, "other")
    path = _trace(tmp_path, key)
    faults = _faults(path, other_pub)
    assert faults[0] == "signature_invalid" and set(faults) <= {"signature_invalid", "incomplete"}
    events = _events(path)
    sig = events[5]["payload"]["signature"]
    events[5]["payload"]["signature"] = ("0" if sig[0] != "0" else "1") + sig[1:]
    _rehash(events)
    _write(path, events)
    assert _faults(path, pub)[0] == "signature_invalid"


def test_a_bad_key_file_is_a_typed_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    with pytest.raises(ValidationError) as e:
        cra.Runtime(signing_key=bad)
    assert e.value.code == "INVALID_KEY"
    _, pub = _keys(tmp_path)
    with pytest.raises(ValidationError):
        cra.Runtime(signing_key=pub)  # a public key cannot sign
    with pytest.raises(ValidationError) as e:
        cra.Runtime(signing_key=tmp_path / "signing", checkpoint_events=0)
    assert e.value.code == "INVALID_OPTION"


def test_runtime_verify_checks_signatures_in_memory(tmp_path: Path) -> None:
    key, pub = _keys(tmp_path)
    _, other = _keys(tmp_path, "other")
    rt = cra.Runtime(signing_key=key, checkpoint_events=3)
    sid = rt.create_session("agent", "goal")
    for i in range(7):
        rt.record(sid, "x.step", {"i": i})
    rt.end_session(sid)
    v = rt.verify(sid, public_key=pub)
    assert v.valid and v.signatures is not None
    assert v.signatures["closed"] and v.signatures["coverage"] == 1.0
    assert rt.verify(sid).signatures is None
    bad = rt.verify(sid, public_key=other)
    assert not bad.valid and bad.signatures["faults"][0]["kind"] == "signature_invalid"  # type: ignore[index]
    rt.close()


def test_a_witness_checkpoint_shows_a_cut_at_a_checkpoint(tmp_path: Path) -> None:
    """Cut right after a mid-way checkpoint, a chain looks like an open
    session with nothing unsigned; a later checkpoint kept elsewhere shows
    the cut (`truncated`)."""
    key, pub = _keys(tmp_path)
    path = _trace(tmp_path, key, n=12, every=5)
    events = _events(path)
    witness = tmp_path / "witness.json"
    witness.write_text(json.dumps(events[-1]))  # the final checkpoint
    assert cra.verify_jsonl(path, public_key=pub, checkpoints=[witness]).valid
    _write(path, events[:6])  # up to and including the first checkpoint
    assert _faults(path, pub) == []  # alone: an open session, all signed
    alone = subprocess.run(
        [sys.executable, "-m", "cra", "trace", "verify", str(path), "--public-key", str(pub)],
        capture_output=True,
        text=True,
    )
    assert "not proven complete" in alone.stdout
    r = cra.verify_jsonl(path, public_key=pub, checkpoints=[witness])
    kinds = [f["kind"] for s in r.signatures.values() for f in s["faults"]]  # type: ignore[union-attr]
    assert kinds == ["truncated"] and not r.valid
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "cra",
            "trace",
            "verify",
            str(path),
            "--public-key",
            str(pub),
            "--checkpoint",
            str(witness),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1 and "truncated" in out.stdout
    with pytest.raises(ValidationError):
        cra.verify_jsonl(path, checkpoints=[witness])  # a witness needs the key


def test_a_checkpoint_is_sealed_after_checkpoint_seconds(tmp_path: Path) -> None:
    import time

    key, pub = _keys(tmp_path)
    rt = cra.Runtime(
        signing_key=key, checkpoint_events=1000, checkpoint_seconds=0.2, checkpoint_at_flush=False
    )
    sid = rt.create_session("agent", "goal")
    rt.record(sid, "x.one", {})
    deadline = time.monotonic() + 10
    while "trace.checkpoint" not in [e.event_type for e in rt._core.events(sid)]:
        assert time.monotonic() < deadline, "no checkpoint by time"
        time.sleep(0.05)
    assert rt.verify(sid, public_key=pub).valid
    rt.close()


def test_without_at_flush_a_flush_seals_no_checkpoint(tmp_path: Path) -> None:
    key, _ = _keys(tmp_path)
    rt = cra.Runtime(signing_key=key, checkpoint_seconds=None, checkpoint_at_flush=False)
    sid = rt.create_session("agent", "goal")
    rt.record(sid, "x.one", {})
    assert rt.flush(timeout=10)
    assert [e.event_type for e in rt.events(sid)] == ["session.started", "x.one"]
    rt.close()


def test_a_chain_cut_by_retention_still_verifies_its_signed_heads(tmp_path: Path) -> None:
    from cra.storage import SQLiteStore

    key, pub = _keys(tmp_path)
    db = tmp_path / "store.db"
    store = SQLiteStore(db)
    rt = cra.Runtime(sinks=[store], signing_key=key, checkpoint_events=5)
    sid = rt.create_session("agent", "goal")
    for i in range(20):
        rt.record(sid, "x.step", {"i": i})
    rt.end_session(sid)
    rt.close()
    store.retention(max_events=10)
    out = tmp_path / "cut.trace.jsonl"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cra",
            "trace",
            "export",
            "--store",
            str(db),
            "--session",
            sid,
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    r = cra.verify_jsonl(out, public_key=pub)
    (s,) = r.signatures.values()  # type: ignore[union-attr]
    assert r.valid, s
    assert s["closed"] and s["roots_unchecked"] >= 1 and r[sid].anchored_at is not None
    store.close()
