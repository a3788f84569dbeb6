"""A tiny real MCP stdio server for the MCP tests and benchmark, the
executors `cra mcp serve` is given in its tests, and their shared helpers.

Run as a script it serves, over stdio, the tools `echo`, `add`,
`delete_everything`, `transfer`, `fail` (always a tool error) and `secret`
(which no test atlas names). Imported, it defines `SERVE_EXECUTORS`
(action id -> callable, for `--executors mcp_upstream:SERVE_EXECUTORS`),
`STRAY_EXECUTORS` (one action no atlas has: a start-up error), and the
helpers that start `python -m cra mcp ...` and read its answers.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List

HERE = Path(__file__).resolve().parent
ATLASES = HERE / "atlases"
UPSTREAM = HERE / "mcp_upstream.py"


def echo(message: str) -> str:
    """Returns the message unchanged."""
    return message


def add(a: float, b: float) -> float:
    """Adds two numbers."""
    return a + b


def delete_everything() -> str:
    """Deletes everything (never reached through a governing proxy)."""
    return "everything deleted"


def transfer(amount: float, to: str) -> str:
    """Moves money (needs a human's approval behind the proxy)."""
    return f"sent {amount} to {to}"


def fail(reason: str = "it broke") -> str:
    """Always fails, as a tool error."""
    from mcp.server.mcpserver.exceptions import ToolError

    raise ToolError(f"upstream failure: {reason}")


def secret() -> str:
    """A tool no atlas names: hidden and refused behind the proxy."""
    return "the secret"


async def note_add(text: str) -> Dict[str, Any]:
    """An async executor of `notes.add`."""
    await asyncio.sleep(0)
    return {"stored": text, "length": len(text)}


def note_count() -> int:
    """A sync executor of `notes.count`."""
    return 3


SERVE_EXECUTORS: Dict[str, Callable[..., Any]] = {
    "notes.add": note_add,
    "notes.count": note_count,
    "notes.purge": lambda: "purged",
    "payment.send": lambda amount: f"paid {amount}",
}

STRAY_EXECUTORS: Dict[str, Callable[..., Any]] = {"notes.ad": note_add}


# -- helpers of the tests and the benchmark ---------------------------------------------------


def child_env() -> Dict[str, str]:
    """This process's environment, with this directory importable (for
    `--executors mcp_upstream:...`)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH")) if p)
    return env


def cra_args(*args: str) -> List[str]:
    """`python -m cra ARGS` as a command line."""
    return [sys.executable, "-m", "cra", *args]


def upstream_args() -> List[str]:
    """The command line of this upstream server."""
    return [sys.executable, str(UPSTREAM)]


def stdio_params(argv: List[str]) -> Any:
    """`StdioServerParameters` of a command line, with `child_env()`."""
    from mcp import StdioServerParameters

    return StdioServerParameters(command=argv[0], args=argv[1:], env=child_env(), cwd=str(HERE))


def run_async(fn: Callable[[], Awaitable[Any]], timeout: float = 60.0) -> Any:
    """Runs `fn()` in a new event loop, failing after `timeout` seconds."""

    async def bounded() -> Any:
        return await asyncio.wait_for(fn(), timeout)

    return asyncio.run(bounded())


def text_of(result: Any) -> str:
    """The text blocks of a `CallToolResult`, joined."""
    return " ".join(c.text for c in result.content if getattr(c, "type", "") == "text")


def read_events(path: Path) -> List[Dict[str, Any]]:
    """The events of a `.trace.jsonl` file."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def main() -> None:
    """Serves the tools over stdio until the client goes away."""
    from mcp.server.mcpserver import MCPServer

    server: Any = MCPServer("cra-test-upstream")
    for fn in (echo, add, delete_everything, transfer, fail, secret):
        server.tool()(fn)
    server.run("stdio")


if __name__ == "__main__":
    main()
