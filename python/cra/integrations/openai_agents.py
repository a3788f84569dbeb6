"""cra inside the OpenAI Agents SDK: a session's allowed actions as `FunctionTool`s.

`function_tools(gt)` turns the resolution of a `GovernedTools` into one
`agents.FunctionTool` per allowed action (named by `cra.carp.tool_names`).
Every call goes through `gt.ainvoke`, so it is checked, executed and traced by
the runtime; a refusal (any `CraError`: denied, rate limited, waiting for
approval, invalid parameters, failed) comes back to the model as the tool's
output, the way the SDK reports a failing tool, instead of ending the run.

Needs `openai-agents` (`pip install 'cra[openai-agents]'`).
"""

from __future__ import annotations

import inspect
import json
from typing import Any, Awaitable, Callable, Dict, List, Mapping, Optional, Union

from agents import FunctionTool, RunContextWrapper
from agents.exceptions import UserError
from agents.strict_schema import ensure_strict_json_schema
from agents.tool import default_tool_error_function
from agents.tool_context import ToolContext
from agents.tracing import SpanError, get_current_span

from ..agents import GovernedTools, refusal_text
from ..carp import AllowedAction, to_openai_tools, tool_names
from ..errors import CraError, ValidationError

__all__ = ["ToolErrorFunction", "function_tools", "refusal_message", "strict_schema_ok"]

#: What the SDK calls a `failure_error_function`: the error -> the model's text.
ToolErrorFunction = Callable[[RunContextWrapper[Any], Exception], Union[str, Awaitable[str]]]


def refusal_message(ctx: RunContextWrapper[Any], error: Exception) -> str:
    """The text the model sees for a refused or failed call: `CODE: reason`
    (with the faulty paths of invalid parameters, the approval id of a call
    waiting for a human, the wait of a rate limit). Errors that are not
    cra's get the SDK's default text, which hides their details."""
    if not isinstance(error, CraError):
        return default_tool_error_function(ctx, error)
    return refusal_text(error)


def strict_schema_ok(schema: Mapping[str, Any]) -> bool:
    """True if the SDK's strict mode keeps `schema`'s meaning: it converts,
    and no object has an optional property (strict mode makes every
    property required; an open object is closed, which only narrows what
    the model may send)."""
    try:
        ensure_strict_json_schema(json.loads(json.dumps(schema)))
    except (UserError, TypeError, ValueError):
        return False
    return _all_required(schema)


def _all_required(node: Any) -> bool:
    if isinstance(node, list):
        return all(_all_required(item) for item in node)
    if not isinstance(node, dict):
        return True
    props = node.get("properties")
    if isinstance(props, dict) and not set(props) <= set(node.get("required") or ()):
        return False
    return all(_all_required(value) for value in node.values())


def _arguments(text: str) -> Dict[str, Any]:
    try:
        value = json.loads(text) if text.strip() else {}
    except ValueError as e:
        raise ValidationError(
            f"the tool arguments are not valid JSON: {e}", code="INVALID_PARAMETERS"
        ) from None
    if not isinstance(value, dict):
        raise ValidationError("the tool arguments are not a JSON object", code="INVALID_PARAMETERS")
    return value


def _for_model(result: Any) -> str:
    if isinstance(result, str):
        return result
    return json.dumps(result, ensure_ascii=False, default=str)


def _note_on_span(tool: str, error: Exception) -> None:
    span = get_current_span()
    if span is not None:
        code = error.code if isinstance(error, CraError) else type(error).__name__
        span.set_error(
            SpanError(
                message="Error running tool (non-fatal)", data={"tool_name": tool, "error": code}
            )
        )


def _invoker(
    gt: GovernedTools, action_id: str, name: str, on_error: Optional[ToolErrorFunction]
) -> Callable[[ToolContext[Any], str], Awaitable[Any]]:
    async def invoke(ctx: ToolContext[Any], input: str) -> Any:
        try:
            return _for_model(await gt.ainvoke(action_id, _arguments(input)))
        except Exception as e:
            if on_error is None:
                raise
            _note_on_span(name, e)
            text = on_error(ctx, e)
            return await text if inspect.isawaitable(text) else text

    return invoke


def _function_tool(
    gt: GovernedTools,
    action: AllowedAction,
    definition: Mapping[str, Any],
    on_error: Optional[ToolErrorFunction],
    sdk_approval: bool,
) -> FunctionTool:
    schema: Dict[str, Any] = definition["parameters"]
    return FunctionTool(
        name=definition["name"],
        description=definition["description"],
        params_json_schema=schema,
        on_invoke_tool=_invoker(gt, action.action_id, definition["name"], on_error),
        strict_json_schema=strict_schema_ok(schema),
        needs_approval=sdk_approval and action.requires_confirmation,
    )


def function_tools(
    gt: GovernedTools,
    *,
    failure_error_function: Optional[ToolErrorFunction] = refusal_message,
    sdk_approval: bool = True,
) -> List[FunctionTool]:
    """One `FunctionTool` per action the session may use now (its current
    resolution), in the resolution's order.

    The schema is the action's parameters schema, in strict mode when that
    keeps its meaning (see `strict_schema_ok`); an action that needs a
    human's approval has `needs_approval=True`, so the SDK asks first (cra
    still enforces its own approval; with `sdk_approval=False` only cra
    asks, e.g. through the session's `on_approval`).

    `failure_error_function` turns an error into the model's text, as in
    `agents.function_tool`; with None, errors propagate and end the run."""
    res = gt.resolution
    names = tool_names(res)
    defs = {d["function"]["name"]: d["function"] for d in to_openai_tools(res)}
    return [
        _function_tool(gt, a, defs[names[a.action_id]], failure_error_function, sdk_approval)
        for a in res.allowed_actions
    ]
