"""The `cra` parser and dispatch: `build_parser()` and `main()`."""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Optional, Sequence

from .._core import __version__
from ..errors import CraError
from . import carp, conformance, demo, serve, trace
from .exits import EXIT_INTERRUPTED, EXIT_UNREADABLE

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; each sets `func(args) -> exit status`."""
    p = argparse.ArgumentParser(prog="cra", description="Context Registry for Agents")
    p.add_argument("--version", action="version", version=f"cra {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    trace.add_commands(sub)
    carp.add_commands(sub)
    demo.add_commands(sub)
    conformance.add_commands(sub)
    serve.add_commands(sub)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs one command line; returns its exit status (see `cra.cli.exits`)."""
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except CraError as e:
        print(f"error: {e.code}: {e}", file=sys.stderr)
        return EXIT_UNREADABLE
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_UNREADABLE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
