"""Governed tools for agents: calls through the runtime, refusals as typed exceptions.

The tool definitions for OpenAI, Anthropic and MCP live in `cra.carp`
beside the resolution they describe; they are re-exported here.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional, Protocol, Sequence, TypeVar

from .carp import (
    CARPRequest,
    CARPResolution,
    action_for_tool,
    to_anthropic_tools,
    to_mcp_tools,
    to_openai_tools,
    tool_name,
)
from .errors import ApprovalRequiredError, AuthorizationError, RateLimitedError, UpstreamError
from .execute import ExecuteResponse

__all__ = [
    "ActionDenied",
    "ActionFailed",
    "ApprovalPending",
    "GovernedRuntime",
    "GovernedTools",
    "action_for_tool",
    "to_anthropic_tools",
    "to_mcp_tools",
    "to_openai_tools",
    "tool_name",
]

F = TypeVar("F", bound=Callable[..., Any])


class GovernedRuntime(Protocol):
    """What `GovernedTools` needs of a runtime (`cra.Runtime` has it all)."""

    def get_session(self, session_id: str) -> Dict[str, Any]: ...

    def timestamp(self) -> str: ...

    def resolve(self, request: Mapping[str, Any]) -> CARPResolution: ...

    def execute(self, request: Mapping[str, Any]) -> ExecuteResponse: ...

    def register_executor(self, key: str, fn: Callable[..., Any]) -> None: ...


class ActionDenied(AuthorizationError):
    """The runtime refused the call; the message is fit to show the model."""

    def __init__(self, response: ExecuteResponse) -> None:
        err = response.error
        super().__init__(
            err.message if err else "denied",
            code=err.code if err else "ACTION_NOT_ALLOWED",
            details=err.details if err else {},
        )
        self.response = response


class RateLimited(RateLimitedError):
    """Denied by a rate limit or budget; `retry_after` says when to try again."""

    def __init__(self, response: ExecuteResponse) -> None:
        err = response.error
        super().__init__(
            err.message if err else "rate limited",
            code=err.code if err else "RATE_LIMIT_EXCEEDED",
            recoverable=True,
            details=err.details if err else {},
        )
        self.response = response
        self.retry_after = response.retry_after


class ApprovalPending(ApprovalRequiredError):
    """The call waits for a human; `approval_id` and `parameters_hash` name it."""

    def __init__(self, response: ExecuteResponse) -> None:
        err = response.error
        details = err.details if err else {}
        super().__init__(
            err.message if err else "approval required",
            code="APPROVAL_REQUIRED",
            recoverable=True,
            details=details,
        )
        self.response = response
        self.approval_id: Optional[str] = details.get("approval_id")
        self.parameters_hash: Optional[str] = details.get("parameters_hash")


class ActionFailed(UpstreamError):
    """The executor failed (or the parameters were invalid)."""

    def __init__(self, response: ExecuteResponse) -> None:
        err = response.error
        super().__init__(
            err.message if err else "failed",
            code=err.code if err else "EXECUTION_FAILED",
            details=err.details if err else {},
        )
        self.response = response


def raise_for(response: ExecuteResponse) -> Any:
    """The result of a successful answer; otherwise the matching exception."""
    if response.status == "success":
        return response.result
    if response.status == "pending_approval":
        raise ApprovalPending(response)
    code = response.error.code if response.error else ""
    if code in ("RATE_LIMIT_EXCEEDED", "BUDGET_EXCEEDED"):
        raise RateLimited(response)
    if response.status == "denied":
        raise ActionDenied(response)
    raise ActionFailed(response)


class GovernedTools:
    """Plain Python functions as governed tools of one session: each call
    resolves when needed, executes through the runtime and is traced; a
    refused call raises a typed exception the agent can show the model."""

    def __init__(
        self,
        rt: GovernedRuntime,
        session_id: str,
        *,
        goal: Optional[str] = None,
        risk_tier: Optional[str] = None,
        atlas_ids: Optional[Sequence[str]] = None,
    ) -> None:
        info = rt.get_session(session_id)
        self._rt = rt
        self.session_id = session_id
        self.agent_id: str = info["agent_id"]
        self.goal: str = goal or info["goal"]
        self.risk_tier = risk_tier
        self.atlas_ids = list(atlas_ids) if atlas_ids is not None else None
        self._resolution: Optional[CARPResolution] = None

    def resolve(self) -> CARPResolution:
        """A fresh resolution for the session's goal."""
        req = CARPRequest.resolve(
            self.session_id,
            self.agent_id,
            self.goal,
            risk_tier=self.risk_tier,
            atlas_ids=self.atlas_ids,
            timestamp=self._rt.timestamp(),
        )
        self._resolution = self._rt.resolve(req)
        return self._resolution

    @property
    def resolution(self) -> CARPResolution:
        res = self._resolution
        if res is None or res.decision.expires_at <= self._rt.timestamp():
            res = self.resolve()
        return res

    def call(self, action_id: str, /, **parameters: Any) -> Any:
        """Executes `action_id` with `parameters` through the runtime."""
        res = self.resolution
        if not res.is_allowed(action_id):
            res = self.resolve()
        req = CARPRequest.execute(
            self.session_id,
            self.agent_id,
            self.goal,
            res.resolution_id,
            action_id,
            parameters,
            timestamp=self._rt.timestamp(),
        )
        return raise_for(self._rt.execute(req))

    def tool(self, action_id: str) -> Callable[[F], F]:
        """Decorator: `fn` becomes the executor of `action_id`, and calling the
        returned function goes through the runtime."""

        def deco(fn: F) -> F:
            self._rt.register_executor(action_id, fn)

            def governed(**parameters: Any) -> Any:
                return self.call(action_id, **parameters)

            governed.__name__ = getattr(fn, "__name__", action_id)
            governed.__doc__ = fn.__doc__
            governed.__wrapped__ = fn  # type: ignore[attr-defined]
            return governed  # type: ignore[return-value]

        return deco

    def wrap(self, fn: Callable[..., Any], action_id: str) -> Callable[..., Any]:
        """Like `tool`, without decorator syntax."""
        return self.tool(action_id)(fn)
