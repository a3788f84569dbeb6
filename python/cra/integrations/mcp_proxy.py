"""A governing MCP proxy in front of any stdio MCP server (`cra mcp proxy`).

The proxy starts the upstream server as its child (an MCP client over
stdio) and serves MCP over its own stdin and stdout. The upstream tool `X`
is governed as the action `NAME.X` (`NAME` defaults to `mcp`; a tool whose
`NAME.X` is not an action id, e.g. one with upper case or `-`, can never be
allowed):

- `tools/list` shows the upstream tools whose action the session's
  resolution allows, under their upstream names, schemas and descriptions;
- `tools/call` executes `NAME.X` through the runtime (`GovernedTools.ainvoke`)
  with an executor, registered for this session only, that forwards the call
  upstream: denials, approvals, rate limits, budgets and the action's
  parameters schema are checked first, and the call is traced;
- a refused call is a tool error naming the code and reason
  (`ACTION_NOT_ALLOWED: ...`); an upstream tool with no action in the loaded
  atlases is not listed, and calling it is refused;
- the upstream's own tool errors pass through unchanged (traced as failures).

The executors' results are the upstream `CallToolResult`s as JSON, so the
trace hashes (or keeps, per the atlas) exactly what the upstream answered.
"""

from __future__ import annotations

import contextvars
import os
from typing import Any, Awaitable, Callable, Dict, List, Optional, Sequence, Set

import anyio
from mcp import ClientSession, StdioServerParameters, stdio_client, types
from mcp.server.lowlevel import Server

from ..agents import ActionFailed, GovernedTools
from ..errors import CraError
from .mcp import (
    ACTION_ID,
    Context,
    Governed,
    not_allowed,
    refusal,
    run_until_stopped,
    serve_stdio,
)

__all__ = ["GovernedProxy", "UpstreamToolError", "proxy", "run_proxy", "upstream_tools"]

#: Seconds the upstream has to answer `initialize` and the first `tools/list`.
START_TIMEOUT = 30.0

#: Where a forwarding executor leaves an upstream tool error for the call
#: that is waiting on it (a box per call, so concurrent calls stay apart).
_UPSTREAM_ERROR: contextvars.ContextVar[Optional[Dict[str, types.CallToolResult]]] = (
    contextvars.ContextVar("cra_mcp_upstream_error", default=None)
)


class UpstreamToolError(Exception):
    """The upstream answered a call with a tool error (`isError: true`)."""

    def __init__(self, tool: str, result: types.CallToolResult) -> None:
        texts = [c.text for c in result.content if isinstance(c, types.TextContent)]
        super().__init__(f"upstream tool {tool!r} failed: {' '.join(texts)[:500]}")
        self.result = result


async def upstream_tools(upstream: ClientSession) -> List[types.Tool]:
    """Every tool the upstream lists, all pages."""
    tools: List[types.Tool] = []
    cursor: Optional[str] = None
    while True:
        params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
        page = await upstream.list_tools(params=params)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            return tools


class GovernedProxy:
    """The MCP handlers of the proxy: one governed session in front of one
    upstream client session."""

    def __init__(
        self,
        gt: GovernedTools,
        upstream: ClientSession,
        *,
        name: str = "mcp",
        known: Sequence[str] = (),
    ) -> None:
        self.gt = gt
        self.upstream = upstream
        self.name = name
        self._known: Set[str] = set(known)
        self._tools: Dict[str, types.Tool] = {}
        self._registered: Set[str] = set()

    def action_id(self, tool: str) -> Optional[str]:
        """`NAME.tool`, if that is an action id at all."""
        action = f"{self.name}.{tool}"
        return action if ACTION_ID.match(action) else None

    async def refresh(self) -> None:
        """Lists the upstream tools again and registers a forwarding executor
        for each new one that has an action in the loaded atlases."""
        self._tools = {t.name: t for t in await upstream_tools(self.upstream)}
        for tool in self._tools:
            action = self.action_id(tool)
            if action in self._known and action not in self._registered:
                self.gt.register(action, self._forwarder(tool))
                self._registered.add(action)

    def _forwarder(self, tool: str) -> Callable[..., Awaitable[Dict[str, Any]]]:
        async def forward(**arguments: Any) -> Dict[str, Any]:
            result = await self.upstream.call_tool(tool, arguments)
            if result.is_error:
                box = _UPSTREAM_ERROR.get()
                if box is not None:
                    box["result"] = result
                raise UpstreamToolError(tool, result)
            return result.model_dump(mode="json", by_alias=True, exclude_none=True)

        forward.__name__ = f"forward_{tool}"
        return forward

    def allowed_tools(self) -> List[types.Tool]:
        """The upstream tools whose action the resolution allows."""
        res = self.gt.resolution
        return [
            t
            for name, t in self._tools.items()
            if (a := self.action_id(name)) is not None and res.is_allowed(a)
        ]

    async def list_tools(
        self, ctx: Context, params: Optional[types.PaginatedRequestParams]
    ) -> types.ListToolsResult:
        await self.refresh()
        return types.ListToolsResult(tools=self.allowed_tools())

    async def call_tool(
        self, ctx: Context, params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        action = self.action_id(params.name)
        arguments = params.arguments or {}
        if action is None:
            return not_allowed(params.name)
        box: Dict[str, types.CallToolResult] = {}
        token = _UPSTREAM_ERROR.set(box)
        try:
            value = await self.gt.ainvoke(action, arguments)
        except ActionFailed as e:
            return box.get("result") or refusal(e)
        except CraError as e:
            return refusal(e)
        finally:
            _UPSTREAM_ERROR.reset(token)
        return types.CallToolResult.model_validate(value)

    def server(self) -> Server[Any]:
        """A low-level MCP server with these handlers."""
        return Server(
            f"cra-proxy-{self.name}", on_list_tools=self.list_tools, on_call_tool=self.call_tool
        )


async def run_proxy(
    session: Governed,
    command: str,
    args: Sequence[str],
    *,
    name: str = "mcp",
    env: Optional[Dict[str, str]] = None,
) -> None:
    """Starts the upstream (with this process's environment unless `env`),
    then serves the proxy over stdio until the client leaves; the upstream
    is stopped on the way out."""
    params = StdioServerParameters(
        command=command, args=list(args), env=dict(os.environ) if env is None else env
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as upstream:
        proxy = GovernedProxy(session.gt, upstream, name=name, known=session.known_actions())
        with anyio.fail_after(START_TIMEOUT):
            await upstream.initialize()
            await proxy.refresh()
        await serve_stdio(proxy.server())


def proxy(session: Governed, command: Sequence[str], *, name: str = "mcp") -> None:
    """`cra mcp proxy`: runs the proxy until its client leaves (or SIGTERM),
    then ends the session and flushes the trace."""
    try:
        run_until_stopped(lambda: run_proxy(session, command[0], command[1:], name=name))
    finally:
        session.close()
