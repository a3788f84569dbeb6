"""cra inside LangChain: a session's allowed actions as `StructuredTool`s.

`structured_tools(gt)` turns the resolution of a `GovernedTools` into one
`langchain_core.tools.StructuredTool` per allowed action (named by
`cra.carp.tool_names`, its args schema the action's JSON schema). A sync
call goes through `gt.invoke`, an async one through `gt.ainvoke`, so every call
is checked, executed and traced by the runtime. A refusal (any `CraError`)
is raised as a `ToolException`, which the tool (`handle_tool_error=True`)
turns into its output: the model reads the code and the reason.

Needs `langchain-core` (`pip install 'cra[langchain]'`).
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, List, Mapping

from langchain_core.tools import StructuredTool, ToolException

from ..agents import GovernedTools, refusal_text
from ..carp import AllowedAction, to_openai_tools, tool_names
from ..errors import CraError

__all__ = ["structured_tools"]


def _sync(gt: GovernedTools, action_id: str) -> Callable[..., Any]:
    def run(**parameters: Any) -> Any:
        try:
            return gt.invoke(action_id, parameters)
        except CraError as e:
            raise ToolException(refusal_text(e)) from e

    return run


def _async(gt: GovernedTools, action_id: str) -> Callable[..., Awaitable[Any]]:
    async def arun(**parameters: Any) -> Any:
        try:
            return await gt.ainvoke(action_id, parameters)
        except CraError as e:
            raise ToolException(refusal_text(e)) from e

    return arun


def _structured_tool(
    gt: GovernedTools, action: AllowedAction, definition: Mapping[str, Any]
) -> StructuredTool:
    return StructuredTool(
        name=definition["name"],
        description=definition["description"],
        args_schema=definition["parameters"],
        func=_sync(gt, action.action_id),
        coroutine=_async(gt, action.action_id),
        handle_tool_error=True,
        metadata={"cra_action_id": action.action_id, "risk_tier": action.risk_tier},
    )


def structured_tools(gt: GovernedTools) -> List[StructuredTool]:
    """One `StructuredTool` per action the session may use now (its current
    resolution), in the resolution's order. Its `metadata` names the action
    (`cra_action_id`) and its risk tier."""
    res = gt.resolution
    names = tool_names(res)
    defs = {d["function"]["name"]: d["function"] for d in to_openai_tools(res)}
    return [_structured_tool(gt, a, defs[names[a.action_id]]) for a in res.allowed_actions]
