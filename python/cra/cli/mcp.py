"""`cra mcp serve` and `cra mcp proxy`: governed tools over the Model Context Protocol.

`serve` exposes a session's allowed actions as MCP tools, run by the
executors of `--executors MODULE:ATTR` (a mapping of action id to callable);
`proxy` governs any stdio MCP server given after `--`. Both speak MCP on
stdin/stdout (`serve --http` on loopback instead), so everything they say
of their own goes to stderr. Both need the `mcp` extra.
"""

from __future__ import annotations

import argparse
from typing import Any, Callable, List

from ..errors import CraError
from .exits import EXIT_OK, EXIT_USAGE
from .safe import err

__all__ = ["add_commands", "run_proxy", "run_serve"]

DEFAULT_PORT = 8765


def _fail(text: str) -> int:
    """One escaped line on stderr (stdout is the MCP wire); the usage status."""
    err(f"error: {' '.join(text.split())[:500]}")
    return EXIT_USAGE


def _start(args: argparse.Namespace, go: Callable[[Any], None], *, agent: str) -> int:
    """Opens the session `go` serves; start-up faults are one line on stderr."""
    try:
        from ..integrations.mcp import open_session
    except ImportError as e:
        return _fail(f"cra mcp needs the mcp extra, mcp 2.x (pip install 'cra[mcp]'): {e}")
    try:
        session = open_session(
            args.atlas,
            agent_id=args.agent_id or agent,
            goal=args.goal,
            trace_file=args.trace_file,
        )
    except (CraError, OSError, ValueError) as e:
        return _fail(f"cra mcp cannot start: {e}")
    try:
        go(session)
    except (CraError, OSError, ValueError, ImportError, AttributeError) as e:
        return _fail(f"cra mcp: {e}")
    return EXIT_OK


def run_serve(args: argparse.Namespace) -> int:
    """`cra mcp serve`: returns once the client has gone (or on SIGTERM)."""
    if not 0 < args.port < 65536:
        return _fail(f"--port {args.port}: not a TCP port")

    def go(session: Any) -> None:
        from ..integrations.mcp import load_executors, serve

        executors = load_executors(args.executors)
        serve(session, executors, http_port=args.port if args.http else None)

    return _start(args, go, agent="mcp-server")


def run_proxy(args: argparse.Namespace) -> int:
    """`cra mcp proxy`: returns once the client has gone (or on SIGTERM)."""
    command: List[str] = list(args.upstream)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        return _fail("cra mcp proxy: give the upstream server's command after --")

    def go(session: Any) -> None:
        from ..integrations.mcp_proxy import proxy

        proxy(session, command, name=args.name)

    return _start(args, go, agent="mcp-proxy")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--atlas",
        action="append",
        required=True,
        metavar="PATH",
        help="atlas manifest or directory to load (repeatable)",
    )
    p.add_argument("--agent-id", help="the session's agent id (default mcp-server / mcp-proxy)")
    p.add_argument(
        "--goal", default="use the MCP tools", help="the session's goal (what it resolves for)"
    )
    p.add_argument("--trace-file", metavar="FILE", help="append the session's trace to FILE")


def add_commands(sub: Any) -> None:
    """Adds `cra mcp serve` and `cra mcp proxy` to the CLI's subparsers."""
    p = sub.add_parser("mcp", help="governed tools over MCP (needs the `mcp` extra)")
    msub = p.add_subparsers(dest="mcp_command", required=True)
    s = msub.add_parser(
        "serve",
        help="serve a session's allowed actions as MCP tools",
        description="Serve a session's allowed actions as MCP tools (stdio, or streamable "
        "HTTP on 127.0.0.1 with --http). Every call goes through the runtime and is traced; "
        "a refusal is a tool error naming its code.",
    )
    _common(s)
    s.add_argument(
        "--executors",
        required=True,
        metavar="MODULE:ATTR",
        help="a mapping {action id: callable} in an importable module; each callable "
        "(sync or async) is called with the parameters as keyword arguments",
    )
    s.add_argument("--http", action="store_true", help="streamable HTTP on loopback, not stdio")
    s.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"--http port (default {DEFAULT_PORT})"
    )
    s.set_defaults(func=run_serve)
    x = msub.add_parser(
        "proxy",
        help="govern a stdio MCP server: cra mcp proxy --atlas A -- COMMAND [ARGS...]",
        description="Start COMMAND as a stdio MCP server and serve its tools over stdio, "
        "governed: the upstream tool X is the action NAME.X of the loaded atlases.",
    )
    _common(x)
    x.add_argument("--name", default="mcp", help="action prefix of the upstream's tools (mcp)")
    x.add_argument("upstream", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS...]")
    x.set_defaults(func=run_proxy)
