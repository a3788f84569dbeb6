"""`cra keys`: signing keys for checkpoints."""

from __future__ import annotations

import argparse
from typing import Any

from .. import _core
from .exits import EXIT_OK
from .safe import out

__all__ = ["add_commands"]


def cmd_generate(args: argparse.Namespace) -> int:
    key_id = _core.generate_signing_key(args.path)
    out(f"wrote {args.path} (private, mode 0600) and {args.path}.pub (public); key id {key_id}")
    return EXIT_OK


def add_commands(sub: Any) -> None:
    """Adds `cra keys` and its subcommands to the CLI's subparsers."""
    keys = sub.add_parser("keys", help="signing keys for trace checkpoints").add_subparsers(
        dest="keys_command", required=True
    )
    g = keys.add_parser(
        "generate",
        help="write an Ed25519 key pair: PATH (PKCS#8 PEM, 0600) and PATH.pub (SPKI PEM)",
    )
    g.add_argument("path", metavar="PATH")
    g.set_defaults(func=cmd_generate)
