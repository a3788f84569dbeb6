"""Governed tools for agents: calls through the runtime, refusals as typed exceptions.

The tool definitions for OpenAI, Anthropic and MCP live in `cra.carp`
beside the resolution they describe; they are re-exported here.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, TypeVar

from . import _core
from .approval import Decision, Grant, PendingApproval, Reject, apply, await_decided, wait_decided
from .carp import (
    CARPResolution,
    action_for_tool,
    to_anthropic_tools,
    to_mcp_tools,
    to_openai_tools,
    tool_name,
)
from .errors import (
    ApprovalRequiredError,
    AuthorizationError,
    CraError,
    RateLimitedError,
    UpstreamError,
)
from .execute import ExecuteResponse, settle
from .wrapping import governed_function

if TYPE_CHECKING:
    from .runtime import Runtime

__all__ = [
    "ActionDenied",
    "ActionFailed",
    "ApprovalPending",
    "Decision",
    "GovernedTools",
    "Grant",
    "PendingApproval",
    "RateLimited",
    "Reject",
    "action_for_tool",
    "refusal_text",
    "to_anthropic_tools",
    "to_mcp_tools",
    "to_openai_tools",
    "tool_name",
]

F = TypeVar("F", bound=Callable[..., Any])


#: What `on_approval` is: called with the pending approval, it answers a
#: `Grant`, a `Reject` or None (stay pending), itself or as an awaitable.
OnApproval = Callable[[PendingApproval], Any]

#: Set while a call is retried after its approval was decided, so the
#: retry never asks again.
_RETRYING: contextvars.ContextVar[bool] = contextvars.ContextVar("cra_retrying", default=False)


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


def refusal_text(error: CraError) -> str:
    """A refusal as one line a model can act on: `CODE: reason`, with the
    faulty parameter paths, the approval id of a call waiting for a human
    and the wait of a rate limit (what every framework adapter returns)."""
    text = f"{error.code}: {error.message}"
    faults = [f"{f['path'] or '/'} {f['message']}" for f in error.details.get("errors") or []]
    if faults:
        text += " (" + "; ".join(faults) + ")"
    approval_id = error.details.get("approval_id")
    if approval_id:
        text += f" [approval_id {approval_id}]"
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        text += f" [retry after {retry_after:g} s]"
    return text


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
    is checked against the session's resolution (made, and made again when
    it expires or lacks the action, as needed), executed through the
    runtime and traced; a refused call raises a typed exception the agent
    can show the model.

    Executors registered here (`register`, `tool`, `wrap`) belong to this
    session: they run for its calls only, before any runtime-wide one.

    `on_approval(pending)` (sync or async) decides on a call that needs a
    human's approval, answering `Grant(approver)` or `Reject(approver)`;
    `wait_for_approval` (seconds) instead waits for a decision made
    elsewhere (another thread, or the approvals endpoint of a server on
    this runtime). Either way the decision is recorded as `approve` and
    `reject` record it, and the call then runs or is refused. A call may
    also pass `wait_for_approval=` itself (the name is reserved)."""

    def __init__(
        self,
        rt: Runtime,
        session_id: str,
        *,
        goal: Optional[str] = None,
        risk_tier: Optional[str] = None,
        atlas_ids: Optional[Sequence[str]] = None,
        on_approval: Optional[OnApproval] = None,
        wait_for_approval: Optional[float] = None,
        executors: Optional[Mapping[str, Callable[..., Any]]] = None,
    ) -> None:
        info = rt.get_session(session_id)
        self._rt = rt
        self.session_id: str = info["session_id"]
        self.agent_id: str = info["agent_id"]
        self.goal: str = goal or info["goal"]
        self.risk_tier = risk_tier
        self.atlas_ids = list(atlas_ids) if atlas_ids is not None else None
        self._on_approval = on_approval
        self._wait = wait_for_approval
        self._own = rt._executors.of_session(self.session_id)
        self._g = _core.Governed(
            rt._front,
            self.session_id,
            self.goal,
            self._own,
            self._refused,
            risk_tier,
            self.atlas_ids,
        )
        # The hot path goes straight to the core (see `call`).
        self.call = self._g.call  # type: ignore[method-assign]
        for key, fn in (executors or {}).items():
            self.register(key, fn)

    # -- resolution -------------------------------------------------------
    def resolve(self) -> CARPResolution:
        """A fresh resolution for the session's goal."""
        res: CARPResolution = self._g.resolve()
        return res

    @property
    def resolution(self) -> CARPResolution:
        """The session's live resolution (made now if there is none)."""
        res: CARPResolution = self._g.resolution()
        return res

    def check(self) -> List[str]:
        """Allowed actions of the resolution that no executor serves (the
        session's own or the runtime's): calling one would fail."""
        served = set(self._own) | set(self._rt._executors.by_key)
        names = dict(self._rt._core.action_executors())
        return [
            a
            for a in self.resolution.allowed_action_ids
            if a not in served and names.get(a) not in served
        ]

    # -- executors --------------------------------------------------------
    def register(self, key: str, fn: Callable[..., Any]) -> None:
        """Makes `fn(**parameters)` this session's executor of an action id
        (or atlas executor name); an unknown key is `ACTION_NOT_FOUND`."""
        self._rt._check_executor_key(key, fn)
        self._own[key] = fn

    def tool(self, action_id: str) -> Callable[[F], F]:
        """Decorator: `fn` becomes this session's executor of `action_id`,
        and the returned function (same name, docstring and signature)
        calls it through the runtime."""

        def deco(fn: F) -> F:
            self.register(action_id, fn)
            out: F = governed_function(fn, action_id, self.call, self.acall)
            return out

        return deco

    def wrap(self, fn: Callable[..., Any], action_id: str) -> Callable[..., Any]:
        """Like `tool`, without decorator syntax."""
        return self.tool(action_id)(fn)

    # -- calls ------------------------------------------------------------
    def call(self, action_id: str, /, **parameters: Any) -> Any:
        """Executes `action_id` with `parameters` through the runtime and
        returns what the executor returned; a refusal raises `ActionDenied`,
        `RateLimited`, `ApprovalPending` or `ActionFailed`. (An instance
        calls the core directly; this is the same.)"""
        return self._g.call(action_id, **parameters)

    def invoke(
        self,
        action_id: str,
        parameters: Mapping[str, Any],
        *,
        wait_for_approval: Optional[float] = None,
    ) -> Any:
        """`call` with the parameters as a mapping: every name is the
        action's (none is reserved), for adapters that pass on what a model
        or client sent."""
        return self._g.invoke(action_id, dict(parameters), wait_for_approval)

    async def acall(self, action_id: str, /, **parameters: Any) -> Any:
        """`call` for a running event loop: an async executor is awaited on
        this loop, and the core's checks and records take only the time of
        the call itself (with `durability="sync"`, they wait for the store
        on a worker thread)."""
        wait = parameters.pop("wait_for_approval", None)
        return await self._arun(action_id, parameters, wait)

    async def ainvoke(
        self,
        action_id: str,
        parameters: Mapping[str, Any],
        *,
        wait_for_approval: Optional[float] = None,
    ) -> Any:
        """`invoke` for a running event loop (as `acall`)."""
        return await self._arun(action_id, dict(parameters), wait_for_approval)

    async def _arun(self, action_id: str, parameters: Dict[str, Any], wait: Optional[float]) -> Any:
        begun = await self._step(self._g.begin, action_id, parameters)
        if not isinstance(begun, _core.Started):
            return await self._arefused(begun, action_id, parameters, wait)
        try:
            value = begun.executor(**parameters)
            if inspect.isawaitable(value):
                value = await value
        except BaseException as e:
            ok, out = await self._step(self._g.fail, begun, e)
        else:
            ok, out = await self._step(self._g.finish, begun, value)
        return out if ok else await self._arefused(out, action_id, parameters, None)

    async def _step(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._rt.durability == "sync":
            return await asyncio.to_thread(fn, *args)
        return fn(*args)

    # -- refusals and approvals -------------------------------------------
    def _pending(
        self, response: ExecuteResponse, action_id: str, parameters: Dict[str, Any]
    ) -> PendingApproval:
        p = ApprovalPending(response)
        return PendingApproval(
            approval_id=p.approval_id or "",
            session_id=self.session_id,
            agent_id=self.agent_id,
            action_id=action_id,
            parameters=dict(parameters),
            parameters_hash=p.parameters_hash,
            reason=str(p.message),
        )

    def _settles(self, response: ExecuteResponse, wait: Optional[float]) -> bool:
        """True when a pending answer is to be decided in band."""
        return (
            response.status == "pending_approval"
            and not _RETRYING.get()
            and (self._on_approval is not None or wait is not None or self._wait is not None)
        )

    def _refused(
        self,
        response: ExecuteResponse,
        action_id: str,
        parameters: Dict[str, Any],
        wait: Optional[float],
    ) -> Any:
        """The core's hook for a call that did not succeed: raises its
        refusal, or settles its approval in band and runs it again."""
        if not self._settles(response, wait):
            return raise_for(response)
        pending = self._pending(response, action_id, parameters)
        if self._on_approval is not None:
            decided = apply(self._rt, pending, settle(self._on_approval(pending)))
        else:
            decided = wait_decided(self._rt, pending, _timeout(wait, self._wait))
        if not decided:
            return raise_for(response)
        token = _RETRYING.set(True)
        try:
            return self._g.invoke(action_id, parameters, None)
        finally:
            _RETRYING.reset(token)

    async def _arefused(
        self,
        response: ExecuteResponse,
        action_id: str,
        parameters: Dict[str, Any],
        wait: Optional[float],
    ) -> Any:
        """`_refused` for `acall`: an async `on_approval` is awaited here."""
        if not self._settles(response, wait):
            return raise_for(response)
        pending = self._pending(response, action_id, parameters)
        if self._on_approval is not None:
            decision = self._on_approval(pending)
            if inspect.isawaitable(decision):
                decision = await decision
            decided = apply(self._rt, pending, decision)
        else:
            decided = await await_decided(self._rt, pending, _timeout(wait, self._wait))
        if not decided:
            return raise_for(response)
        token = _RETRYING.set(True)
        try:
            return await self._arun(action_id, dict(parameters), None)
        finally:
            _RETRYING.reset(token)


def _timeout(wait: Optional[float], default: Optional[float]) -> float:
    t = wait if wait is not None else default
    if t is None:
        return 0.0
    if not isinstance(t, (int, float)) or isinstance(t, bool) or t < 0:
        raise TypeError(f"wait_for_approval is a number of seconds >= 0, not {t!r}")
    return float(t)
