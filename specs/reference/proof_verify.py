"""Reference verifier of the proof documents of specs/merkle.md (sections 6-8).

Stand-alone: the Python standard library, `cryptography` for Ed25519, and
merkle_verify.py from this folder (loaded by path). No import of `cra`.

    python specs/reference/proof_verify.py PROOF PUB

reads the proof document PROOF (`cra-inclusion/1` or `cra-consistency/1`)
and the SPKI PEM public key PUB, prints VALID or INVALID with the reason,
and exits 0 or 1.

Every check refuses rather than guesses: counts must be JSON integers from 0
to 2**64 - 1, hashes 64 hex digits, signatures 128 hex digits.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, List, Optional, Tuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)

INCLUSION = "cra-inclusion/1"
CONSISTENCY = "cra-consistency/1"
CHECKPOINT_EVENT = "trace.checkpoint"
MESSAGE_TAG = "cra-trace-checkpoint/1"
KEY_ID_HEX = 16
U64_MAX = 2**64 - 1


def _load_merkle() -> ModuleType:
    path = Path(__file__).resolve().parent / "merkle_verify.py"
    spec = importlib.util.spec_from_file_location("_cra_ref_merkle_verify", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


merkle = _load_merkle()

try:  # BLAKE3 chains are checked only where the `blake3` package exists.
    import blake3 as _blake3  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the environment
    _blake3 = None

_HEX = re.compile(r"[0-9a-fA-F]*")
# The four spellings of a UUID that the Rust `uuid` crate accepts.
_H = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_UUID_FORMS = tuple(
    re.compile(f) for f in (r"[0-9a-fA-F]{32}", _H, r"\{" + _H + r"\}", "urn:uuid:" + _H)
)


class Invalid(Exception):
    """Why a document does not hold."""


# ---------------------------------------------------------------- helpers


def _hex_bytes(text: Any, length: int) -> Optional[bytes]:
    """`length` bytes from a hex string (either case), else None."""
    if not isinstance(text, str) or len(text) != 2 * length or not _HEX.fullmatch(text):
        return None
    return bytes.fromhex(text)


def _count(obj: Any, key: str) -> Optional[int]:
    """A JSON integer in 0..2**64-1 (not a bool, not a float), else None."""
    v = obj.get(key) if isinstance(obj, dict) else None
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= U64_MAX:
        return None
    return v


def _text(obj: Any, key: str) -> Optional[str]:
    v = obj.get(key) if isinstance(obj, dict) else None
    return v if isinstance(v, str) else None


def _uuid(text: str) -> Optional[str]:
    """The hyphenated lower-case form of a UUID, else None."""
    if not any(f.fullmatch(text) for f in _UUID_FORMS):
        return None
    h = re.sub(r"[^0-9a-fA-F]", "", text.removeprefix("urn:uuid:")).lower()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _hash_list(doc: dict, key: str) -> List[str]:
    items = doc.get(key)
    if not isinstance(items, list):
        raise Invalid(f"/{key}: missing or not a list")
    for i, h in enumerate(items):
        if _hex_bytes(h, 32) is None:
            raise Invalid(f"/{key}/{i}: not 64 hex digits")
    return items


def public_key_of(public_key_pem: bytes) -> Tuple[Ed25519PublicKey, str]:
    """The Ed25519 key of an SPKI PEM and its key id."""
    key = load_pem_public_key(public_key_pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the public key is not an Ed25519 key")
    raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return key, hashlib.sha256(raw).hexdigest()[:KEY_ID_HEX]


# ---------------------------------------------------------------- event hash


def event_hash_holds(event: Any) -> bool:
    """True if the event's `event_hash` is the TRACE/1.0 hash of its fields
    (SHA-256, or BLAKE3 when the `blake3` package is there)."""
    if not isinstance(event, dict):
        return False
    names = (
        "trace_version",
        "event_id",
        "trace_id",
        "span_id",
        "session_id",
        "timestamp",
        "event_type",
        "previous_event_hash",
    )
    fields = {k: _text(event, k) for k in names}
    seq = _count(event, "sequence")
    stated = _hex_bytes(event.get("event_hash"), 32)
    if any(v is None for v in fields.values()) or seq is None or stated is None:
        return False
    if "payload" not in event:
        return False
    try:
        canonical = json.dumps(event["payload"], sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        return False
    parent = event.get("parent_span_id")
    data = "".join(
        [
            fields["trace_version"],
            fields["event_id"],
            fields["trace_id"],
            fields["span_id"],
            parent if isinstance(parent, str) else "",
            fields["session_id"],
            str(seq),
            fields["timestamp"],
            fields["event_type"],
            canonical,
            fields["previous_event_hash"],
        ]
    ).encode("utf-8", "surrogatepass")
    if hashlib.sha256(data).digest() == stated:
        return True
    return _blake3 is not None and _blake3.blake3(data).digest() == stated


# ---------------------------------------------------------------- checkpoints


def checkpoint_statement(event: Any) -> Tuple[dict, str]:
    """The statement a checkpoint event makes (session_id normalised) and
    its signature; raises Invalid when the event is not a checkpoint."""
    if not isinstance(event, dict) or event.get("event_type") != CHECKPOINT_EVENT:
        raise Invalid("not a trace.checkpoint event")
    p = event.get("payload")
    if p is None and "payload" not in event:
        raise Invalid("no payload")
    if not isinstance(p, dict):
        raise Invalid("the payload is not an object")
    st: dict = {}
    sid = _text(p, "session_id")
    if sid is None:
        raise Invalid("payload: `session_id` is missing or not a string")
    st["session_id"] = _uuid(sid)
    if st["session_id"] is None:
        raise Invalid("payload: `session_id` is not a UUID")
    for k in ("first_sequence", "tree_size"):
        st[k] = _count(p, k)
        if st[k] is None:
            raise Invalid(f"payload: `{k}` is missing or not a count")
    for k in ("head_hash", "merkle_root", "signed_at", "key_id"):
        st[k] = _text(p, k)
        if st[k] is None:
            raise Invalid(f"payload: `{k}` is missing or not a string")
    if not isinstance(p.get("final"), bool):
        raise Invalid("payload: `final` is missing or not a boolean")
    st["final"] = p["final"]
    event_count = _count(p, "event_count")
    if event_count is None:
        raise Invalid("payload: `event_count` is missing or not a count")
    if event_count != st["tree_size"]:
        raise Invalid("payload: `event_count` differs from `tree_size`")
    signature = _text(p, "signature")
    if signature is None:
        raise Invalid("payload: `signature` is missing or not a string")
    return st, signature


def signed_message(st: dict) -> bytes:
    """The exact bytes a checkpoint's signature covers."""
    lines = [
        MESSAGE_TAG,
        st["session_id"],
        str(st["first_sequence"]),
        str(st["tree_size"]),
        st["head_hash"],
        st["merkle_root"],
        st["signed_at"],
        st["key_id"],
        "1" if st["final"] else "0",
    ]
    return "".join(line + "\n" for line in lines).encode("utf-8", "surrogatepass")


def _checked(event: Any, key: Ed25519PublicKey, key_id: str, at: str) -> dict:
    try:
        st, signature = checkpoint_statement(event)
    except Invalid as e:
        raise Invalid(f"{at}: {e}") from None
    sig = _hex_bytes(signature, 64)
    ok = st["key_id"] == key_id and sig is not None
    if ok:
        try:
            key.verify(sig, signed_message(st))  # type: ignore[arg-type]
        except InvalidSignature:
            ok = False
    if not ok:
        raise Invalid(
            f"{at}: SIGNATURE_INVALID: not signed by key {key_id} (it names key {st['key_id']})"
        )
    if not event_hash_holds(event):
        raise Invalid(f"{at}: the checkpoint event's own hash does not hold")
    if _hex_bytes(st["merkle_root"], 32) is None:
        raise Invalid(f"{at}: merkle_root is not 64 hex digits")
    return st


def verify_checkpoint(event: dict, public_key_pem: bytes) -> Tuple[bool, str]:
    """Checks one `trace.checkpoint` event: its payload, key id, signature
    and own event hash."""
    try:
        key, key_id = public_key_of(public_key_pem)
        st = _checked(event, key, key_id, "/checkpoint")
    except (Invalid, ValueError) as e:
        return False, str(e)
    return True, (
        f"checkpoint of session {st['session_id']} over {st['tree_size']} events "
        f"from sequence {st['first_sequence']}, signed by key {key_id}"
    )


# ---------------------------------------------------------------- documents


def _inclusion(doc: dict, key: Ed25519PublicKey, key_id: str) -> str:
    if "checkpoint" not in doc:
        raise Invalid("/checkpoint: missing")
    st = _checked(doc["checkpoint"], key, key_id, "/checkpoint")
    if "event" not in doc:
        raise Invalid("/event: missing")
    event = doc["event"]
    if not event_hash_holds(event):
        raise Invalid("/event: the event's hash does not match its fields")
    if event.get("session_id") != st["session_id"]:
        raise Invalid("/event/session_id: the event is of another session")
    index, size = _count(doc, "leaf_index"), _count(doc, "tree_size")
    if index is None:
        raise Invalid("/leaf_index: missing or not a count")
    if size is None:
        raise Invalid("/tree_size: missing or not a count")
    seq = _count(event, "sequence")
    if seq is None:
        raise Invalid("/sequence: missing or not a count")
    if size != st["tree_size"] or seq != st["first_sequence"] + index:
        raise Invalid(
            "/leaf_index: leaf_index and tree_size do not match the event's "
            "sequence and the checkpoint"
        )
    path = _hash_list(doc, "audit_path")
    if not merkle.verify_inclusion(event["event_hash"], index, size, path, st["merkle_root"]):
        raise Invalid("/audit_path: the path does not lead to the signed merkle_root")
    return (
        f"event {event.get('event_id')} (sequence {seq}) of session {st['session_id']} "
        f"is in the tree of {size} events signed by key {key_id} at {st['signed_at']}"
    )


def _consistency(doc: dict, key: Ed25519PublicKey, key_id: str) -> str:
    for k in ("first", "second"):
        if k not in doc:
            raise Invalid(f"/{k}: missing")
    a = _checked(doc["first"], key, key_id, "/first")
    b = _checked(doc["second"], key, key_id, "/second")
    if a["session_id"] != b["session_id"] or a["first_sequence"] != b["first_sequence"]:
        raise Invalid("/second: the checkpoints are of different chains")
    m, n = _count(doc, "first_size"), _count(doc, "second_size")
    if m is None:
        raise Invalid("/first_size: missing or not a count")
    if n is None:
        raise Invalid("/second_size: missing or not a count")
    if m != a["tree_size"] or n != b["tree_size"]:
        raise Invalid("/first_size: the sizes differ from the checkpoints'")
    proof = _hash_list(doc, "proof")
    if not merkle.verify_consistency(m, n, a["merkle_root"], b["merkle_root"], proof):
        raise Invalid("/proof: the signed trees are not consistent")
    return (
        f"session {a['session_id']}: the tree of {n} events signed at {b['signed_at']} "
        f"extends the tree of {m} signed at {a['signed_at']}"
    )


def verify_document(doc: dict, public_key_pem: bytes) -> Tuple[bool, str]:
    """(True, what it proves) or (False, why not) for a proof document."""
    try:
        key, key_id = public_key_of(public_key_pem)
    except ValueError as e:
        return False, f"bad public key: {e}"
    try:
        if not isinstance(doc, dict):
            raise Invalid("the document is not a JSON object")
        version = doc.get("proof_version")
        if version == INCLUSION:
            return True, _inclusion(doc, key, key_id)
        if version == CONSISTENCY:
            return True, _consistency(doc, key, key_id)
        raise Invalid(f"/proof_version: {version!r} is not {INCLUSION!r} or {CONSISTENCY!r}")
    except Invalid as e:
        return False, str(e)


def main(argv: List[str]) -> int:
    if len(argv) != 3:
        print("usage: proof_verify.py PROOF PUB", file=sys.stderr)
        return 2
    proof_path, pub_path = Path(argv[1]), Path(argv[2])
    try:
        doc = json.loads(proof_path.read_text(encoding="utf-8"))
    except ValueError as e:
        print(f"{proof_path}: INVALID — not JSON ({e})")
        return 1
    ok, why = verify_document(doc, pub_path.read_bytes())
    print(f"{proof_path}: {'VALID' if ok else 'INVALID'} — {why}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
