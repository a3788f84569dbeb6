"""Reference verifier of the Merkle proofs of specs/merkle.md.

Stand-alone: the Python standard library only (hashlib), no import of `cra`.
Hashes are hex strings; every hash must decode to exactly 32 bytes, or the
proof is refused. The algorithms are those of RFC 9162 sections 2.1.3.2 and
2.1.4.2 (the tree is RFC 6962's, always SHA-256).

    python specs/reference/merkle_verify.py [path/to/merkle.json]

checks the vectors file (by default specs/vectors/merkle.json next to this
folder) and prints a summary; the exit status is 0 when every vector holds.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Iterable, List, Optional

HASH_LEN = 32
EMPTY_ROOT_HEX = hashlib.sha256(b"").hexdigest()


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _hash(hex_text: str) -> Optional[bytes]:
    """32 bytes from hex, or None when the text is not a 32-byte hash."""
    try:
        raw = bytes.fromhex(hex_text)
    except (TypeError, ValueError):
        return None
    return raw if len(raw) == HASH_LEN else None


def _hashes(hex_list: Iterable[str]) -> Optional[List[bytes]]:
    out = []
    for h in hex_list:
        raw = _hash(h)
        if raw is None:
            return None
        out.append(raw)
    return out


def root(leaves_hex: List[str]) -> str:
    """The root (hex) of the tree over these leaves' data (RFC 6962 MTH)."""

    def mth(hashes: List[bytes]) -> bytes:
        if len(hashes) == 1:
            return hashes[0]
        k = 1
        while k * 2 < len(hashes):
            k *= 2
        return node_hash(mth(hashes[:k]), mth(hashes[k:]))

    if not leaves_hex:
        return EMPTY_ROOT_HEX
    return mth([leaf_hash(bytes.fromhex(d)) for d in leaves_hex]).hex()


def root_from_inclusion_proof(
    leaf_hash_bytes: bytes, index: int, size: int, path: List[bytes]
) -> Optional[bytes]:
    """The root an audit path leads to, or None if the path cannot fit."""
    if not 0 <= index < size:
        return None
    fn, sn = index, size - 1
    r = leaf_hash_bytes
    for p in path:
        if sn == 0:
            return None  # more hashes than levels
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def verify_inclusion_hash(
    leaf_hash_hex: str, index: int, size: int, path_hex_list: List[str], root_hex: str
) -> bool:
    """Inclusion of the leaf given by its leaf hash (hex)."""
    leaf, want, path = _hash(leaf_hash_hex), _hash(root_hex), _hashes(path_hex_list)
    if leaf is None or want is None or path is None:
        return False
    got = root_from_inclusion_proof(leaf, index, size, path)
    return got is not None and got == want


def verify_inclusion(
    leaf_hex: str, index: int, size: int, path_hex_list: List[str], root_hex: str
) -> bool:
    """Inclusion of the leaf whose data is `leaf_hex` (an event hash, hex) at
    `index` in the tree of `size` leaves whose root is `root_hex`."""
    try:
        data = bytes.fromhex(leaf_hex)
    except (TypeError, ValueError):
        return False
    return verify_inclusion_hash(leaf_hash(data).hex(), index, size, path_hex_list, root_hex)


def verify_consistency(
    m: int, n: int, root_m_hex: str, root_n_hex: str, proof_hex_list: List[str]
) -> bool:
    """The tree of `m` leaves (root `root_m_hex`) is a prefix of the tree of
    `n` leaves (root `root_n_hex`). Needs 0 < m <= n."""
    first, second, proof = _hash(root_m_hex), _hash(root_n_hex), _hashes(proof_hex_list)
    if first is None or second is None or proof is None:
        return False
    if not 0 < m <= n:
        return False
    if m == n:
        return not proof and first == second
    if not proof:
        return False
    if m & (m - 1) == 0:  # m is a power of two: the proof omits its root
        proof = [first, *proof]
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first and sr == second


# The vectors' probes of the Go implementation it holds, and one it accepts
# that this verifier cannot: equal sizes with two equal 12-byte "roots".
KNOWN_DIVERGENCE = {"testdata/consistency/additional/sizes-are-equal-one-and-proof-is-empty.json"}


def check_vectors(doc: dict) -> List[str]:
    """Every failure of the vectors file, as text (empty when all hold)."""
    failures = []
    roots = {r["tree_size"]: r["root"] for r in doc["roots"]}
    inputs = doc["leaf_inputs"]
    for size, want in roots.items():
        if root(inputs[:size]) != want:
            failures.append(f"root of size {size}")
    for c in doc["inclusion"]:
        i, n = c["leaf_index"], c["tree_size"]
        if not verify_inclusion(inputs[i], i, n, c["audit_path"], roots[n]):
            failures.append(f"inclusion of leaf {i} in size {n}")
    for c in doc["consistency"]:
        m, n = c["first_size"], c["second_size"]
        if not verify_consistency(m, n, roots[m], roots[n], c["proof"]):
            failures.append(f"consistency of sizes {m} and {n}")
    for p in doc["inclusion_probes"]:
        got = verify_inclusion_hash(
            p["leaf_hash"], p["leaf_index"], p["tree_size"], p["audit_path"], p["root"]
        )
        if got != p["valid"]:
            failures.append(f"inclusion probe {p['file']}: got {got}")
    for p in doc["consistency_probes"]:
        got = verify_consistency(
            p["first_size"], p["second_size"], p["first_root"], p["second_root"], p["proof"]
        )
        want = p["valid"] and p["file"] not in KNOWN_DIVERGENCE
        if got != want:
            failures.append(f"consistency probe {p['file']}: got {got}")
    return failures


def main(argv: List[str]) -> int:
    default = Path(__file__).resolve().parent.parent / "vectors" / "merkle.json"
    path = Path(argv[1]) if len(argv) > 1 else default
    doc = json.loads(path.read_text(encoding="utf-8"))
    failures = check_vectors(doc)
    total = (
        len(doc["roots"])
        + len(doc["inclusion"])
        + len(doc["consistency"])
        + len(doc["inclusion_probes"])
        + len(doc["consistency_probes"])
    )
    for f in failures:
        print("FAIL", f)
    print(f"{total - len(failures)} of {total} Merkle vectors hold ({path})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
