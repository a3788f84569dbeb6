"""A session's allowed actions as the tools of an MCP server (`cra mcp serve`).

Each tool is an action the session's resolution allows, named as in every
other tool format (`cra.carp.tool_names`: dots become `__`), with the
action's parameters schema as its input schema (`cra.carp.to_mcp_tools`).
A `tools/call` executes through the runtime (`GovernedTools.ainvoke`), so
every check of the protocol applies (policies, approvals, rate limits,
budgets, the parameters schema) and every call is traced. A refused call is
a tool result with `isError: true` whose text starts with the refusal's
code: `ACTION_NOT_ALLOWED: ...`, `APPROVAL_REQUIRED: ... (approval_id ...)`,
`RATE_LIMIT_EXCEEDED: ...`, `INVALID_PARAMETERS: ...`.

Executors are given as `MODULE:ATTR` (`load_executors`): ATTR is a mapping
of action id to a callable, sync or async, called with the parameters as
keyword arguments; it returns a JSON value (a string becomes the tool's
text, anything else its JSON text and, for an object, its structured
content). An action id no loaded atlas defines is an error at start-up.

One cra session serves the whole process (every MCP client of an `--http`
server shares it). Needs the `mcp` extra (the `mcp` package, 2.x).
`cra.integrations.mcp_proxy` puts the same governance in front of any
stdio MCP server.
"""

from __future__ import annotations

import asyncio
import json
import os
import pkgutil
import re
import signal
import stat
import sys
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, List, Mapping, Optional, Sequence, cast

import anyio
from mcp import types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

from ..agents import GovernedTools, refusal_text
from ..carp import CARPResolution, action_for_tool, to_mcp_tools, tool_name
from ..errors import CraError
from ..runtime import Runtime

__all__ = [
    "Governed",
    "GovernedMCPServer",
    "load_executors",
    "open_session",
    "refusal",
    "run_until_stopped",
    "serve",
    "serve_http",
    "serve_stdio",
    "tool_result",
]

Executor = Callable[..., Any]
Context = ServerRequestContext[Any, Any]

#: The action id grammar (`specs/atlas.md` §2).
ACTION_ID = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


# -- start-up ------------------------------------------------------------------------------


def load_executors(spec: str) -> Dict[str, Executor]:
    """The mapping of action id to callable named by `MODULE:ATTR` (looked up
    from the current directory too, as `python -m` would)."""
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise ValueError(f"executors {spec!r}: expected MODULE:ATTR")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    target = pkgutil.resolve_name(spec)
    if not isinstance(target, MappingABC):
        raise ValueError(f"executors {spec!r}: not a mapping of action id to callable")
    out: Dict[str, Executor] = {}
    for key, fn in target.items():
        if not isinstance(key, str) or not callable(fn):
            raise ValueError(f"executors {spec!r}: {key!r} is not an action id with a callable")
        out[key] = fn
    return out


@dataclass(frozen=True)
class Governed:
    """A runtime with one session, and the session's governed tools."""

    rt: Runtime
    gt: GovernedTools

    def known_actions(self) -> List[str]:
        """Every action id of the loaded atlases."""
        return [a for info in self.rt.atlases() for a in info.actions]

    def close(self) -> None:
        """Ends the session and closes the runtime (which flushes the trace)."""
        try:
            self.rt.end_session(self.gt.session_id, "completed")
        except CraError:
            pass  # already ended (expired): the trace says so
        finally:
            self.rt.close()


def open_session(
    atlases: Sequence[str],
    *,
    agent_id: str,
    goal: str,
    trace_file: Optional[str] = None,
) -> Governed:
    """A runtime with `atlases` loaded, and a new session of `agent_id`."""
    rt = Runtime(trace_file=trace_file, atlases=atlases)
    try:
        return Governed(rt, rt.governed(rt.create_session(agent_id, goal)))
    except BaseException:
        rt.close()
        raise


def register_executors(gt: GovernedTools, executors: Mapping[str, Executor]) -> None:
    """Registers each executor for the session (an id no atlas has is an error)."""
    for action_id, fn in executors.items():
        gt.register(action_id, fn)


# -- results ---------------------------------------------------------------------------------


def _text_result(text: str, *, error: bool, structured: Any = None) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)],
        structured_content=structured,
        is_error=error,
    )


def refusal(e: CraError) -> types.CallToolResult:
    """A refused (or failed) call as an MCP tool error the model can read."""
    return _text_result(refusal_text(e), error=True)


def not_allowed(name: str) -> types.CallToolResult:
    """The tool error of a name that is no action at all."""
    return _text_result(
        f"ACTION_NOT_ALLOWED: no tool {name!r} in this session's resolution", error=True
    )


def tool_result(value: Any) -> types.CallToolResult:
    """An executor's result as a tool result: a string as text, anything else
    as JSON text (an object also as structured content)."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return _text_result(text, error=False, structured=value if isinstance(value, dict) else None)


# -- the server ----------------------------------------------------------------------------


def _mcp_tool(d: Mapping[str, Any]) -> types.Tool:
    return types.Tool.model_validate(dict(d))


def action_for_name(resolution: CARPResolution, name: str) -> Optional[str]:
    """The action behind a tool name: an allowed one, else a denied one of
    that name, else the name read as an action id (`a__b` as `a.b`), so that
    the runtime refuses it and the trace shows the attempt."""
    action = action_for_tool(resolution, name)
    if action is not None:
        return action
    for denied in resolution.denied_actions:
        if name in (denied.action_id, tool_name(denied.action_id)):
            return denied.action_id
    guess = name.replace("__", ".")
    return guess if ACTION_ID.match(guess) else None


class GovernedMCPServer:
    """The MCP handlers of one governed session: `tools/list` lists what the
    resolution allows, `tools/call` executes through the runtime."""

    def __init__(self, gt: GovernedTools, *, name: str = "cra") -> None:
        self.gt = gt
        self.name = name

    async def list_tools(
        self, ctx: Context, params: Optional[types.PaginatedRequestParams]
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[_mcp_tool(t) for t in to_mcp_tools(self.gt.resolution)])

    async def call_tool(
        self, ctx: Context, params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        action = action_for_name(self.gt.resolution, params.name)
        arguments = params.arguments or {}
        if action is None:
            return not_allowed(params.name)
        try:
            value = await self.gt.ainvoke(action, arguments)
        except CraError as e:
            return refusal(e)
        return tool_result(value)

    def server(self) -> Server[Any]:
        """A low-level MCP server with these handlers."""
        return Server(self.name, on_list_tools=self.list_tools, on_call_tool=self.call_tool)


# -- transports ------------------------------------------------------------------------------


class StdinLines:
    """The lines of standard input, read by the event loop rather than by a
    worker thread, so that a cancelled server (SIGTERM) stops at once instead
    of waiting for the client's next line."""

    #: The longest line (one JSON-RPC message) accepted.
    LIMIT = 256 * 1024 * 1024

    def __init__(self) -> None:
        self._reader: Optional[asyncio.StreamReader] = None

    @staticmethod
    def usable() -> bool:
        """True if stdin is a pipe, socket or terminal (what the loop can watch)."""
        try:
            mode = os.fstat(sys.stdin.fileno()).st_mode
        except (OSError, ValueError, AttributeError):
            return False
        return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)

    def __aiter__(self) -> StdinLines:
        return self

    async def __anext__(self) -> str:
        if self._reader is None:
            reader = asyncio.StreamReader(limit=self.LIMIT)
            loop = asyncio.get_running_loop()
            protocol = asyncio.StreamReaderProtocol(reader)
            await loop.connect_read_pipe(lambda: protocol, sys.stdin.buffer)
            self._reader = reader
        line = await self._reader.readline()
        if not line:
            raise StopAsyncIteration
        return line.decode("utf-8", "replace")


async def serve_stdio(server: Server[Any]) -> None:
    """Serves MCP over this process's stdin and stdout until the client leaves."""
    stdin = cast("anyio.AsyncFile[str]", StdinLines()) if StdinLines.usable() else None
    async with stdio_server(stdin=stdin) as (read, write):
        await server.run(read, write, server.create_initialization_options())


async def serve_http(server: Server[Any], port: int, *, log_level: str = "warning") -> None:
    """Serves MCP over streamable HTTP at `http://127.0.0.1:PORT/mcp` (loopback
    only; Host and Origin are checked against loopback names)."""
    import uvicorn

    app = server.streamable_http_app(host="127.0.0.1")
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level=log_level, server_header=False
    )
    await uvicorn.Server(config).serve()


def run_until_stopped(main: Callable[[], Awaitable[None]]) -> None:
    """Runs `main()` in a new event loop; SIGTERM stops it like end of input."""

    async def guarded() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        if task is None or not hasattr(signal, "SIGTERM"):
            return await main()
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            await main()
        finally:
            loop.remove_signal_handler(signal.SIGTERM)

    try:
        asyncio.run(guarded())
    except asyncio.CancelledError:
        pass


def serve(
    session: Governed,
    executors: Mapping[str, Executor],
    *,
    http_port: Optional[int] = None,
) -> None:
    """Registers the executors and serves the session's tools (stdio, or
    streamable HTTP on loopback with `http_port`) until stopped; then ends
    the session and flushes the trace."""
    try:
        register_executors(session.gt, executors)
        server = GovernedMCPServer(session.gt).server()
        if http_port is None:
            run_until_stopped(lambda: serve_stdio(server))
        else:
            run_until_stopped(lambda: serve_http(server, http_port))
    finally:
        session.close()
