"""The `cra` parser and dispatch: `build_parser()` and `main()`."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Optional, Sequence

from .._core import __version__
from ..errors import CraError
from . import atlas, carp, conformance, demo, keys, mcp, serve, store, trace
from .exits import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, EXIT_UNREADABLE
from .safe import err

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; each sets `func(args) -> exit status`."""
    p = argparse.ArgumentParser(prog="cra", description="Context Registry for Agents")
    p.add_argument("--version", action="version", version=f"cra {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    trace.add_commands(sub)
    atlas.add_commands(sub)
    carp.add_commands(sub)
    demo.add_commands(sub)
    conformance.add_commands(sub)
    serve.add_commands(sub)
    keys.add_commands(sub)
    mcp.add_commands(sub)
    store.add_commands(sub)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs one command line; returns its exit status (see `cra.cli.exits`).

    When the reader of the output goes away (`cra trace show FILE | head -1`)
    the command stops quietly with `EXIT_BROKEN_PIPE`."""
    try:
        try:
            return _run(argv)
        finally:
            sys.stdout.flush()  # a closed pipe shows here, not at exit
    except BrokenPipeError:
        _silence_closed_pipes()
        return EXIT_BROKEN_PIPE


def _run(argv: Optional[Sequence[str]]) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except BrokenPipeError:
        raise
    except CraError as e:
        err(f"error: {e.code}: {e}")
        return EXIT_UNREADABLE
    except OSError as e:
        err(f"error: {e}")
        return EXIT_UNREADABLE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _silence_closed_pipes() -> None:
    """Points a standard stream whose reader has gone at /dev/null, so that
    what is left in its buffer goes nowhere at exit instead of raising again."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, stream.fileno())
                os.close(devnull)
            except (OSError, ValueError):
                pass
