"""The reference verifier of proof documents (specs/reference/proof_verify.py)
and `cra trace verify-proof` agree: both accept every proof `cra trace prove`
and `cra trace consistency` write for a signed trace, and both refuse each
tampered one."""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Dict, List, Optional, Tuple

import cra
import pytest

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "specs" / "reference" / "proof_verify.py"
CHECKPOINT = "trace.checkpoint"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("proof_verify", REFERENCE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pv = _load()

Doc = Dict[str, Any]


def _cra(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cra", *args], capture_output=True, text=True, timeout=120
    )


def _parallel(fn: Callable[[Any], Any], items: List[Any]) -> List[Any]:
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(fn, items))


def _events(path: Path) -> List[Doc]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass
class Signed:
    dir: Path
    trace: Path
    pub: Path
    other_pub: Path
    sessions: Dict[str, List[Doc]]  # session id -> its events, in order
    ended: List[str]


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Signed:
    tmp = tmp_path_factory.mktemp("proofs")
    key, other = tmp / "signing", tmp / "other"
    for k in (key, other):
        out = _cra("keys", "generate", str(k))
        assert out.returncode == 0, out.stderr
    path = tmp / "signed.trace.jsonl"
    rt = cra.Runtime(trace_file=path, signing_key=key, checkpoint_events=3)
    a = rt.create_session("agent-a", "long, ended")
    b = rt.create_session("agent-b", "open at close")
    c = rt.create_session("agent-c", "short, ended")
    for i in range(11):
        rt.record(a, "x.step", {"i": i, "note": f"step {i} \u00e9"})
        if i % 2 == 0:
            rt.record(b, "x.other", {"i": i, "nested": {"k": [i, None, True]}})
        if 2 <= i <= 5:
            rt.record(c, "x.third", {"i": i})
    rt.end_session(a)
    rt.end_session(c)
    rt.close()
    sessions: Dict[str, List[Doc]] = {}
    for e in _events(path):
        sessions.setdefault(e["session_id"], []).append(e)
    assert set(sessions) == {a, b, c}
    for sid, events in sessions.items():
        assert [e["sequence"] for e in events] == list(range(len(events)))
        assert sum(e["event_type"] == CHECKPOINT for e in events) >= 2, sid
    for sid in (a, c):
        assert sessions[sid][-1]["event_type"] == CHECKPOINT
        assert sessions[sid][-1]["payload"]["final"] is True
    return Signed(tmp, path, Path(f"{key}.pub"), Path(f"{other}.pub"), sessions, [a, c])


def _covered(events: List[Doc], index: int) -> bool:
    """True if some checkpoint of the session covers leaf `index`."""
    return any(e["event_type"] == CHECKPOINT and e["payload"]["tree_size"] > index for e in events)


def _read_out(out: subprocess.CompletedProcess[str], path: Path) -> Optional[Doc]:
    if out.returncode != 0:
        return None
    doc: Doc = json.loads(path.read_text(encoding="utf-8"))
    return doc


def _prove(signed: Signed, event_id: str) -> Tuple[int, str, Optional[Doc]]:
    dest = signed.dir / "proofs" / f"inclusion-{event_id}.json"
    dest.parent.mkdir(exist_ok=True)
    out = _cra("trace", "prove", str(signed.trace), "--event", event_id, "--out", str(dest))
    return out.returncode, out.stderr, _read_out(out, dest)


def _consistency(signed: Signed, sid: str, first: int, second: int) -> Doc:
    dest = signed.dir / "proofs" / f"consistency-{sid}-{first}-{second}.json"
    dest.parent.mkdir(exist_ok=True)
    out = _cra(
        "trace",
        "consistency",
        str(signed.trace),
        "--from",
        str(first),
        "--to",
        str(second),
        "--session",
        sid,
        "--out",
        str(dest),
    )
    assert out.returncode == 0, out.stderr
    doc = _read_out(out, dest)
    assert doc is not None
    return doc


@pytest.fixture(scope="module")
def inclusion_docs(signed: Signed) -> List[Doc]:
    jobs = [(sid, i, e) for sid, events in signed.sessions.items() for i, e in enumerate(events)]
    results = _parallel(lambda j: _prove(signed, j[2]["event_id"]), jobs)
    docs = []
    for (sid, i, e), (code, stderr, doc) in zip(jobs, results):
        events = signed.sessions[sid]
        if not _covered(events, i):
            # Only a session's last checkpoint is covered by none.
            assert i == len(events) - 1 and e["event_type"] == CHECKPOINT, (sid, i)
            assert code != 0 and "CHECKPOINT_NOT_FOUND" in stderr
            continue
        assert code == 0, stderr
        assert doc is not None and doc["event"] == e and doc["leaf_index"] == i
        docs.append(doc)
    # Every event of every session but the last checkpoint of each.
    assert len(docs) == sum(len(v) - 1 for v in signed.sessions.values())
    assert any(d["event"]["event_type"] == CHECKPOINT for d in docs)
    return docs


@pytest.fixture(scope="module")
def consistency_docs(signed: Signed) -> List[Doc]:
    jobs = []
    for sid, events in signed.sessions.items():
        seqs = [e["sequence"] for e in events if e["event_type"] == CHECKPOINT]
        jobs += [(sid, x, y) for k, x in enumerate(seqs) for y in seqs[k:]]
    docs = _parallel(lambda j: _consistency(signed, *j), jobs)
    for (_, x, y), doc in zip(jobs, docs):
        assert doc["first"]["sequence"] == x and doc["second"]["sequence"] == y
        assert doc["first_size"] <= doc["second_size"]
    return docs


# Runs `cra trace verify-proof` (the CLI's own entry point, `cra.cli.main`)
# on each path of argv[2:] within one process, printing one JSON line per
# document: [exit status, standard output]. One process for hundreds of
# documents keeps the tamper tests fast; the genuine documents also go
# through `python -m cra` one by one.
_BATCH = """
import contextlib, io, json, sys
from cra.cli import main
for path in sys.argv[2:]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["trace", "verify-proof", path, "--public-key", sys.argv[1]])
    print(json.dumps([code, buf.getvalue()]))
"""


def _cli_verdicts(
    signed: Signed, docs: List[Doc], pub: Optional[Path] = None, batch: bool = False
) -> List[bool]:
    """`cra trace verify-proof` on each document: True for VALID (exit 0),
    False for INVALID (exit 1); anything else fails the test."""
    key = str(pub or signed.pub)
    folder = signed.dir / "checked"
    folder.mkdir(exist_ok=True)
    paths = []
    for doc in docs:
        path = folder / f"doc-{len(list(folder.iterdir()))}.json"
        path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
        paths.append(path)

    def verdict(code: int, stdout: str) -> bool:
        assert code in (0, 1), stdout
        assert (": VALID " if code == 0 else ": INVALID ") in stdout, stdout
        return code == 0

    if batch:
        out = subprocess.run(
            [sys.executable, "-c", _BATCH, key, *map(str, paths)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr
        rows = [json.loads(line) for line in out.stdout.splitlines()]
        assert len(rows) == len(docs)
        return [verdict(code, text) for code, text in rows]

    def one(path: Path) -> bool:
        out = _cra("trace", "verify-proof", str(path), "--public-key", key)
        return verdict(out.returncode, out.stdout)

    return _parallel(one, paths)


def _ref_verdicts(docs: List[Doc], pub: Path) -> List[Tuple[bool, str]]:
    key = pub.read_bytes()
    return [pv.verify_document(d, key) for d in docs]


def _assert_both(
    signed: Signed, docs: List[Doc], want: bool, pub: Optional[Path] = None, batch: bool = False
) -> None:
    ref = _ref_verdicts(docs, pub or signed.pub)
    cli = _cli_verdicts(signed, docs, pub, batch)
    for doc, (ok, why), c in zip(docs, ref, cli):
        assert ok is want, (why, doc)
        assert c is want, doc


# ---------------------------------------------------------------- genuine


def test_every_inclusion_proof_is_valid_for_both(signed: Signed, inclusion_docs: List[Doc]) -> None:
    _assert_both(signed, inclusion_docs, True)


def test_every_consistency_proof_is_valid_for_both(
    signed: Signed, consistency_docs: List[Doc]
) -> None:
    assert any(d["first_size"] == d["second_size"] for d in consistency_docs)
    assert any(d["proof"] for d in consistency_docs)
    _assert_both(signed, consistency_docs, True)


def test_every_checkpoint_event_verifies(signed: Signed) -> None:
    key, other = signed.pub.read_bytes(), signed.other_pub.read_bytes()
    for events in signed.sessions.values():
        for e in events:
            if e["event_type"] != CHECKPOINT:
                continue
            ok, why = pv.verify_checkpoint(e, key)
            assert ok, why
            assert not pv.verify_checkpoint(e, other)[0]
            bad = copy.deepcopy(e)
            bad["payload"]["signed_at"] = bad["payload"]["signed_at"].replace("Z", "+00:00")
            assert not pv.verify_checkpoint(bad, key)[0]


def test_the_reference_main_prints_valid_and_invalid(
    signed: Signed, inclusion_docs: List[Doc]
) -> None:
    good = signed.dir / "main-good.json"
    good.write_text(json.dumps(inclusion_docs[0]))
    out = subprocess.run(
        [sys.executable, str(REFERENCE), str(good), str(signed.pub)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0 and ": VALID" in out.stdout, out.stdout + out.stderr
    out = subprocess.run(
        [sys.executable, str(REFERENCE), str(good), str(signed.other_pub)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1 and ": INVALID" in out.stdout, out.stdout + out.stderr


# ---------------------------------------------------------------- tampered


def _flip(hex_text: str, at: int = 0) -> str:
    c = hex_text[at]
    return hex_text[:at] + ("1" if c == "0" else "0") + hex_text[at + 1 :]


def _flip_payload(payload: Any) -> Any:
    """The payload with one byte of its first string or number changed."""
    if isinstance(payload, dict):
        for k in sorted(payload):
            v = payload[k]
            if isinstance(v, str) and v:
                return {**payload, k: chr(ord(v[0]) ^ 1) + v[1:]}
            if isinstance(v, int) and not isinstance(v, bool):
                return {**payload, k: v ^ 1}
    return {**payload, "added": 1}


def _rehash(event: Doc) -> None:
    """Recomputes the event's own hash, as a forger who knows TRACE/1.0 would."""
    parts = [
        event["trace_version"],
        event["event_id"],
        event["trace_id"],
        event["span_id"],
        event["parent_span_id"] or "",
        event["session_id"],
        str(event["sequence"]),
        event["timestamp"],
        event["event_type"],
        json.dumps(event["payload"], sort_keys=True, separators=(",", ":")),
        event["previous_event_hash"],
    ]
    event["event_hash"] = hashlib.sha256("".join(parts).encode()).hexdigest()


def _with_signature_flipped(cp: Doc) -> Doc:
    cp = copy.deepcopy(cp)
    cp["payload"]["signature"] = _flip(cp["payload"]["signature"], 5)
    _rehash(cp)  # the event hash holds again: only the signature is wrong
    return cp


def _inclusion_tampers(doc: Doc) -> List[Doc]:
    out = []

    def variant(change: Callable[[Doc], None]) -> None:
        d = copy.deepcopy(doc)
        change(d)
        out.append(d)

    def payload(d: Doc) -> None:
        d["event"]["payload"] = _flip_payload(d["event"]["payload"])

    def payload_rehashed(d: Doc) -> None:
        payload(d)
        _rehash(d["event"])

    variant(payload)
    variant(payload_rehashed)
    if doc["audit_path"]:
        variant(lambda d: d["audit_path"].__setitem__(0, _flip(d["audit_path"][0], 7)))
        variant(lambda d: d["audit_path"].__setitem__(-1, _flip(d["audit_path"][-1])))
        variant(lambda d: d["audit_path"].pop())
    variant(lambda d: d["audit_path"].append(d["checkpoint"]["payload"]["merkle_root"]))
    variant(lambda d: d.__setitem__("checkpoint", _with_signature_flipped(d["checkpoint"])))
    variant(lambda d: d["checkpoint"]["payload"].__setitem__("signature", "00" * 64))
    variant(lambda d: d.__setitem__("leaf_index", d["leaf_index"] + 1))
    if doc["leaf_index"] > 0:
        variant(lambda d: d.__setitem__("leaf_index", d["leaf_index"] - 1))
    variant(lambda d: d.__setitem__("tree_size", d["tree_size"] + 1))
    variant(lambda d: d.__setitem__("tree_size", d["tree_size"] - 1))
    variant(lambda d: d.__setitem__("leaf_index", str(d["leaf_index"])))
    variant(lambda d: d.__setitem__("proof_version", "cra-inclusion/2"))
    return out


def _consistency_tampers(doc: Doc) -> List[Doc]:
    out = []

    def variant(change: Callable[[Doc], None]) -> None:
        d = copy.deepcopy(doc)
        change(d)
        out.append(d)

    def swap(d: Doc, sizes: bool) -> None:
        d["first"], d["second"] = d["second"], d["first"]
        if sizes:
            d["first_size"], d["second_size"] = d["second_size"], d["first_size"]

    if doc["proof"]:
        variant(lambda d: d["proof"].__setitem__(0, _flip(d["proof"][0], 9)))
        variant(lambda d: d["proof"].__setitem__(-1, _flip(d["proof"][-1])))
        variant(lambda d: d["proof"].pop())
    variant(lambda d: d["proof"].append("ab" * 32))
    variant(lambda d: d.__setitem__("first", _with_signature_flipped(d["first"])))
    variant(lambda d: d.__setitem__("second", _with_signature_flipped(d["second"])))
    if doc["first_size"] != doc["second_size"]:
        variant(lambda d: swap(d, sizes=True))
        variant(lambda d: swap(d, sizes=False))
        variant(lambda d: d.__setitem__("first_size", d["second_size"]))
    variant(lambda d: d.__setitem__("second_size", d["second_size"] + 1))
    variant(lambda d: d.__setitem__("first_size", 0))
    return out


def test_tampered_inclusion_proofs_are_invalid_for_both(
    signed: Signed, inclusion_docs: List[Doc]
) -> None:
    tampered = [t for d in inclusion_docs for t in _inclusion_tampers(d)]
    assert len(tampered) > 100
    _assert_both(signed, tampered, False, batch=True)


def test_tampered_consistency_proofs_are_invalid_for_both(
    signed: Signed, consistency_docs: List[Doc]
) -> None:
    tampered = [t for d in consistency_docs for t in _consistency_tampers(d)]
    _assert_both(signed, tampered, False, batch=True)


def test_another_key_is_invalid_for_both(
    signed: Signed, inclusion_docs: List[Doc], consistency_docs: List[Doc]
) -> None:
    docs = inclusion_docs[::5] + consistency_docs[::3]
    _assert_both(signed, docs, False, pub=signed.other_pub)


def test_an_event_of_another_session_is_invalid_for_both(
    signed: Signed, inclusion_docs: List[Doc]
) -> None:
    by_session: Dict[str, Doc] = {}
    for d in inclusion_docs:
        by_session.setdefault(d["event"]["session_id"], d)
    a, b = list(by_session.values())[:2]
    mixed = copy.deepcopy(a)
    mixed["checkpoint"] = b["checkpoint"]
    cross = copy.deepcopy(a)
    cross["event"]["session_id"] = b["event"]["session_id"]
    _rehash(cross["event"])
    _assert_both(signed, [mixed, cross], False)


# ---------------------------------------------------------------- CLI errors


def test_prove_an_unknown_event_is_event_not_found(signed: Signed) -> None:
    out = _cra(
        "trace", "prove", str(signed.trace), "--event", "00000000-0000-0000-0000-000000000000"
    )
    assert out.returncode != 0
    assert "EVENT_NOT_FOUND" in out.stdout + out.stderr


def test_prove_on_an_unsigned_trace_is_checkpoint_not_found(tmp_path: Path) -> None:
    path = tmp_path / "unsigned.trace.jsonl"
    rt = cra.Runtime(trace_file=path)
    sid = rt.create_session("agent", "goal")
    rt.record(sid, "x.step", {"i": 1})
    rt.end_session(sid)
    rt.close()
    events = _events(path)
    assert events and not any(e["event_type"] == CHECKPOINT for e in events)
    out = _cra("trace", "prove", str(path), "--event", events[1]["event_id"])
    assert out.returncode != 0
    assert "CHECKPOINT_NOT_FOUND" in out.stdout + out.stderr


def test_consistency_from_a_later_checkpoint_is_refused(signed: Signed) -> None:
    sid = signed.ended[0]
    seqs = [e["sequence"] for e in signed.sessions[sid] if e["event_type"] == CHECKPOINT]
    out = _cra(
        "trace",
        "consistency",
        str(signed.trace),
        "--from",
        str(seqs[-1]),
        "--to",
        str(seqs[0]),
        "--session",
        sid,
    )
    assert out.returncode != 0 and "PROOF_INVALID" in out.stdout + out.stderr
    out = _cra(
        "trace",
        "consistency",
        str(signed.trace),
        "--from",
        "1",
        "--to",
        str(seqs[0]),
        "--session",
        sid,
    )
    assert out.returncode != 0 and "CHECKPOINT_NOT_FOUND" in out.stdout + out.stderr


def test_prove_without_out_prints_json(signed: Signed) -> None:
    event = next(iter(signed.sessions.values()))[1]
    out = _cra("trace", "prove", str(signed.trace), "--event", event["event_id"])
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["event"] == event


def _forged_wrapping_proof(signed: Signed, doc: Doc) -> Doc:
    """An inclusion proof, signed with the real key, whose checkpoint starts
    its tree at sequence 2**64 - 1 and whose event (sequence 0) claims leaf 1:
    2**64 - 1 + 1 is 0 only in wrapping u64 arithmetic."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    private = load_pem_private_key(signed.pub.with_suffix("").read_bytes(), None)
    d = copy.deepcopy(doc)
    event = d["event"]
    event["sequence"] = 0
    _rehash(event)
    mv = pv.merkle
    sibling = mv.leaf_hash(b"\x11" * 32)
    root = mv.node_hash(sibling, mv.leaf_hash(bytes.fromhex(event["event_hash"])))
    cp = d["checkpoint"]
    p = cp["payload"]
    p.update(first_sequence=2**64 - 1, tree_size=2, event_count=2, merkle_root=root.hex())
    p["session_id"] = event["session_id"]
    st, _ = pv.checkpoint_statement(cp)
    p["signature"] = private.sign(pv.signed_message(st)).hex()  # type: ignore[call-arg]
    _rehash(cp)
    d.update(leaf_index=1, tree_size=2, audit_path=[sibling.hex()])
    return d


def test_a_wrapping_first_sequence_is_invalid_for_the_reference(
    signed: Signed, inclusion_docs: List[Doc]
) -> None:
    forged = _forged_wrapping_proof(signed, inclusion_docs[0])
    ok, why = pv.verify_document(forged, signed.pub.read_bytes())
    assert not ok and "leaf_index" in why


def test_a_wrapping_first_sequence_is_invalid_for_the_cli(
    signed: Signed, inclusion_docs: List[Doc]
) -> None:
    forged = _forged_wrapping_proof(signed, inclusion_docs[0])
    assert _cli_verdicts(signed, [forged]) == [False]
