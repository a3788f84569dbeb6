"""`cra trace prove`, `cra trace consistency`, `cra trace verify-proof`:
Merkle proofs against signed checkpoints (`specs/merkle.md`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Optional

from .. import _core
from ..errors import CraError
from .exits import EXIT_INVALID, EXIT_OK
from .safe import err, out, out_json_text

__all__ = ["add_trace_commands"]


def _emit(text: str, dest: Optional[str]) -> None:
    if dest is None:
        out_json_text(text)
    else:
        Path(dest).write_text(text + "\n", encoding="utf-8")
        err(f"wrote {dest}")


def cmd_prove(args: argparse.Namespace) -> int:
    _emit(_core.prove_inclusion(args.file, args.event), args.out)
    return EXIT_OK


def cmd_consistency(args: argparse.Namespace) -> int:
    proof = _core.prove_consistency(args.file, args.first, args.second, args.session)
    _emit(proof, args.out)
    return EXIT_OK


def cmd_verify_proof(args: argparse.Namespace) -> int:
    text = Path(args.proof).read_text(encoding="utf-8")
    try:
        what = _core.verify_proof(text, args.public_key)
    except CraError as e:
        if e.code in ("PROOF_INVALID", "SIGNATURE_INVALID"):
            out(f"{args.proof}: INVALID — {e.code}: {e}")
            return EXIT_INVALID
        raise
    out(f"{args.proof}: VALID — {what}")
    return EXIT_OK


def add_trace_commands(trace: Any) -> None:
    """Adds the proof commands to `cra trace`'s subparsers."""
    p = trace.add_parser(
        "prove", help="write an inclusion proof of one event against its signed checkpoint"
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("--event", required=True, metavar="EVENT_ID")
    p.add_argument("--out", default=None, metavar="PROOF", help="write here (default stdout)")
    p.set_defaults(func=cmd_prove)
    c = trace.add_parser(
        "consistency",
        help="write a consistency proof between two checkpoints (by their sequence)",
    )
    c.add_argument("file", metavar="FILE")
    c.add_argument("--from", dest="first", type=int, required=True, metavar="SEQ")
    c.add_argument("--to", dest="second", type=int, required=True, metavar="SEQ")
    c.add_argument("--session", default=None, metavar="ID", help="needed if FILE has several")
    c.add_argument("--out", default=None, metavar="PROOF", help="write here (default stdout)")
    c.set_defaults(func=cmd_consistency)
    v = trace.add_parser("verify-proof", help="check a proof offline, with the public key only")
    v.add_argument("proof", metavar="PROOF")
    v.add_argument("--public-key", required=True, metavar="PUB")
    v.set_defaults(func=cmd_verify_proof)
