"""CARP/1.0 values: requests, resolutions and what they contain.

`CARPResolution` is a thin, immutable view over the core's resolution;
nested JSON (schemas, context content) is built on first access.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

from . import _core

__all__ = [
    "AllowedAction",
    "AtlasInfo",
    "CARPRequest",
    "CARPResolution",
    "Constraint",
    "ContextBlock",
    "Decision",
    "DeniedAction",
    "new_id",
    "now_timestamp",
]


def new_id() -> str:
    """A new lower-case UUIDv7 string (minted by the core)."""
    return _core.new_id()


def now_timestamp() -> str:
    """The current time as RFC 3339 UTC with six fractional digits and `Z`."""
    return _core.now_timestamp()


@dataclass(frozen=True)
class Decision:
    type: str
    reason: Optional[str]
    approval_id: Optional[str]
    expires_at: str


@dataclass(frozen=True)
class AllowedAction:
    action_id: str
    name: str
    description: str
    parameters_schema: Optional[Dict[str, Any]]
    returns_schema: Optional[Dict[str, Any]]
    risk_tier: str
    requires_confirmation: bool
    idempotent: bool
    rate_limit: Optional[Dict[str, Any]] = None


@dataclass(frozen=True)
class DeniedAction:
    action_id: str
    reason: str
    policy_id: str


@dataclass(frozen=True)
class ContextBlock:
    block_id: str
    source: str
    content_type: str
    content: str
    priority: int
    token_estimate: int


@dataclass(frozen=True)
class Constraint:
    constraint_id: str
    type: str
    parameters: Dict[str, Any] = field(default_factory=dict)


class CARPResolution:
    """What an agent may do for a goal: allowed and denied actions, context
    blocks, constraints and the decision, from one resolve."""

    # Made by the core (`_core.Front`): allocated as `object()` allocates,
    # with the core's handle stored in the `_r` slot (so: no `__new__` or
    # `__init__` here). `_doc`, the resolution as JSON, is set the first
    # time a nested part is read.
    __slots__ = ("_doc", "_r")
    _r: _core.Resolution
    _doc: Dict[str, Any]

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("CARPResolution is immutable")

    def _json(self) -> Dict[str, Any]:
        try:
            return self._doc
        except AttributeError:
            doc: Dict[str, Any] = json.loads(self._r.to_json())
            object.__setattr__(self, "_doc", doc)
            return doc

    @property
    def resolution_id(self) -> str:
        return self._r.resolution_id

    @property
    def request_id(self) -> str:
        return self._r.request_id

    @property
    def session_id(self) -> str:
        return self._r.session_id

    @property
    def trace_id(self) -> str:
        return self._r.trace_id

    @property
    def timestamp(self) -> str:
        return self._r.timestamp

    @property
    def ttl_seconds(self) -> int:
        return self._r.ttl_seconds

    @property
    def decision(self) -> Decision:
        r = self._r
        return Decision(r.decision_type, r.reason, r.approval_id, r.expires_at)

    @property
    def allowed_actions(self) -> List[AllowedAction]:
        return [AllowedAction(**a) for a in self._json()["allowed_actions"]]

    @property
    def denied_actions(self) -> List[DeniedAction]:
        return [DeniedAction(**d) for d in self._json()["denied_actions"]]

    @property
    def context_blocks(self) -> List[ContextBlock]:
        return [ContextBlock(**b) for b in self._json()["context_blocks"]]

    @property
    def constraints(self) -> List[Constraint]:
        return [Constraint(**c) for c in self._json()["constraints"]]

    @property
    def allowed_action_ids(self) -> List[str]:
        return self._r.allowed_action_ids()

    @property
    def denied_action_ids(self) -> List[str]:
        return self._r.denied_action_ids()

    def is_allowed(self, action_id: str) -> bool:
        """True if `action_id` may be executed under this resolution (perhaps after approval)."""
        return self._r.is_allowed(action_id)

    def to_dict(self) -> Dict[str, Any]:
        """The resolution as the protocol's JSON object (a fresh copy)."""
        out: Dict[str, Any] = json.loads(self._r.to_json())
        return out

    def to_json(self) -> str:
        return self._r.to_json()

    def to_openai_tools(self) -> List[Dict[str, Any]]:
        """The allowed actions as OpenAI function tools."""
        from .agents import to_openai_tools

        return to_openai_tools(self)

    def to_anthropic_tools(self) -> List[Dict[str, Any]]:
        """The allowed actions as Anthropic tools."""
        from .agents import to_anthropic_tools

        return to_anthropic_tools(self)

    def to_mcp_tools(self) -> List[Dict[str, Any]]:
        """The allowed actions as MCP tools."""
        from .agents import to_mcp_tools

        return to_mcp_tools(self)

    def __repr__(self) -> str:
        r = self._r
        return (
            f"CARPResolution({r.decision_type}, allowed={r.allowed_action_ids()}, "
            f"denied={r.denied_action_ids()}, id={r.resolution_id})"
        )


@dataclass(frozen=True)
class AtlasInfo:
    atlas_id: str
    version: str
    name: str
    description: str
    actions: List[str]
    policies: List[str]
    capabilities: List[str]
    context_packs: List[str]
    default_ttl_seconds: int
    dependencies: Dict[str, str]

    @classmethod
    def _from_core(cls, d: Mapping[str, Any]) -> AtlasInfo:
        return cls(**d)


class CARPRequest:
    """Builds valid CARP/1.0 requests (ids and timestamps filled in)."""

    @staticmethod
    def resolve(
        session_id: str,
        agent_id: str,
        goal: str,
        *,
        risk_tier: Optional[str] = None,
        atlas_ids: Optional[Sequence[str]] = None,
        required_capabilities: Optional[Sequence[str]] = None,
        context_hints: Optional[Sequence[str]] = None,
        context: Optional[Dict[str, Any]] = None,
        request_id: Optional[str] = None,
        timestamp: Optional[str] = None,
    ) -> Dict[str, Any]:
        """A resolve request as a dict ready for `Runtime.resolve` (pass the
        runtime's `rt.timestamp()` when it runs on a manual clock)."""
        task: Dict[str, Any] = {"goal": goal}
        if risk_tier is not None:
            task["risk_tier"] = risk_tier
        if context_hints is not None:
            task["context_hints"] = list(context_hints)
        if required_capabilities is not None:
            task["required_capabilities"] = list(required_capabilities)
        req: Dict[str, Any] = {
            "carp_version": "1.0",
            "request_id": request_id or new_id(),
            "timestamp": timestamp or now_timestamp(),
            "operation": "resolve",
            "requester": {"agent_id": agent_id, "session_id": session_id},
            "task": task,
        }
        if atlas_ids is not None:
            req["atlas_ids"] = list(atlas_ids)
        if context is not None:
            req["context"] = dict(context)
        return req

    @staticmethod
    def execute(
        session_id: str,
        agent_id: str,
        goal: str,
        resolution_id: str,
        action_id: str,
        parameters: Optional[Dict[str, Any]] = None,
        *,
        idempotency_key: Optional[str] = None,
        request_id: Optional[str] = None,
        timestamp: Optional[str] = None,
    ) -> Dict[str, Any]:
        """An execute request as a dict ready for `Runtime.execute`."""
        execution: Dict[str, Any] = {
            "resolution_id": resolution_id,
            "action_id": action_id,
            "parameters": dict(parameters or {}),
        }
        if idempotency_key is not None:
            execution["idempotency_key"] = idempotency_key
        return {
            "carp_version": "1.0",
            "request_id": request_id or new_id(),
            "timestamp": timestamp or now_timestamp(),
            "operation": "execute",
            "requester": {"agent_id": agent_id, "session_id": session_id},
            "task": {"goal": goal},
            "execution": execution,
        }
