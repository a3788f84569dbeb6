"""`cra store migrate`: upgrades a PostgreSQL store's schema.

A new database gets the latest schema when a server or store opens it; an
older one is upgraded only here, on purpose, while no replica of an older
cra writes to it (`specs/storage.md`)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..errors import CraError
from .exits import EXIT_OK, EXIT_USAGE
from .safe import err, out

__all__ = ["add_commands"]


def cmd_migrate(args: argparse.Namespace) -> int:
    from ..storage import PostgresStore, is_postgres_url

    address = args.store or os.environ.get("CRA_STORE", "")
    if not is_postgres_url(address):
        err("error: cra store migrate needs --store postgresql://… (or CRA_STORE)")
        return EXIT_USAGE
    store = PostgresStore(address, ready=False)
    try:
        before, after = store.migrate(args.to)
    except CraError:
        store.close()
        raise
    store.close()
    if before == after:
        out(f"{store.url}: schema version {after}, up to date")
    else:
        out(f"{store.url}: schema version {before} -> {after}")
    return EXIT_OK


def add_commands(sub: Any) -> None:
    """Adds `cra store` and its subcommands to the CLI's subparsers."""
    store = sub.add_parser("store", help="the PostgreSQL store's schema").add_subparsers(
        dest="store_command", required=True
    )
    m = store.add_parser("migrate", help="upgrade a PostgreSQL store's schema to this cra's")
    m.add_argument(
        "--store", default=None, metavar="URL", help="postgresql://… (default: CRA_STORE)"
    )
    m.add_argument(
        "--to", type=int, default=None, metavar="N", help="the version to reach (default: latest)"
    )
    m.set_defaults(func=cmd_migrate)
