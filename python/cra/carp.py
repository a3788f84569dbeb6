"""CARP/1.0 values: requests, resolutions, their parts, and their agent-tool forms.

`CARPResolution` is a thin, immutable view over the core's resolution;
nested JSON (schemas, context content) is built on first access.
`to_openai_tools`, `to_anthropic_tools` and `to_mcp_tools` turn its allowed
actions into tool definitions of OpenAI, Anthropic and MCP.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
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
    "action_for_tool",
    "new_id",
    "now_timestamp",
    "to_anthropic_tools",
    "tool_names",
    "to_mcp_tools",
    "to_openai_tools",
    "tool_name",
]

_NAME_OK = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


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
        return to_openai_tools(self)

    def to_anthropic_tools(self) -> List[Dict[str, Any]]:
        """The allowed actions as Anthropic tools."""
        return to_anthropic_tools(self)

    def to_mcp_tools(self) -> List[Dict[str, Any]]:
        """The allowed actions as MCP tools."""
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


# -- tools for agent stacks ----------------------------------------------------------------


def tool_name(action_id: str) -> str:
    """A tool name the stacks accept (`^[a-zA-Z0-9_-]{1,64}$`): dots become
    `__`; an id too long for that is shortened with a hash of it."""
    name = action_id.replace(".", "__")
    if not _NAME_OK.match(name):
        digest = hashlib.sha256(action_id.encode("utf-8")).hexdigest()[:8]
        name = f"{name[:55]}_{digest}"
    return name


def tool_names(resolution: CARPResolution) -> Dict[str, str]:
    """Action id -> tool name for a resolution, unique within it (a name two
    ids would share, like `a.b__c` and `a__b.c`, gets a hash suffix)."""
    names: Dict[str, str] = {}
    taken: Dict[str, str] = {}
    for a in resolution.allowed_actions:
        name = tool_name(a.action_id)
        if name in taken:
            digest = hashlib.sha256(a.action_id.encode("utf-8")).hexdigest()[:8]
            name = f"{name[:55]}_{digest}"
        taken[name] = a.action_id
        names[a.action_id] = name
    return names


def action_for_tool(resolution: CARPResolution, name: str) -> Optional[str]:
    """The action id behind a tool name, if the resolution allows it."""
    for action_id, tool in tool_names(resolution).items():
        if name in (action_id, tool):
            return action_id
    return None


def _schema(a: AllowedAction) -> Dict[str, Any]:
    schema = a.parameters_schema
    if not isinstance(schema, dict) or schema.get("type", "object") != "object":
        return {"type": "object", "properties": {}}
    # A copy of its own: SDKs may edit a tool's schema in place.
    return dict(copy.deepcopy(schema), type="object")


def _description(a: AllowedAction) -> str:
    text = a.description or a.name
    if a.requires_confirmation:
        text += " (needs a human's approval before it runs)"
    return text


def to_openai_tools(resolution: CARPResolution) -> List[Dict[str, Any]]:
    """Function tools in the OpenAI format."""
    names = tool_names(resolution)
    return [
        {
            "type": "function",
            "function": {
                "name": names[a.action_id],
                "description": _description(a),
                "parameters": _schema(a),
            },
        }
        for a in resolution.allowed_actions
    ]


def to_anthropic_tools(resolution: CARPResolution) -> List[Dict[str, Any]]:
    """Tools in the Anthropic Messages API format."""
    names = tool_names(resolution)
    return [
        {"name": names[a.action_id], "description": _description(a), "input_schema": _schema(a)}
        for a in resolution.allowed_actions
    ]


def to_mcp_tools(resolution: CARPResolution) -> List[Dict[str, Any]]:
    """Tools in the Model Context Protocol `tools/list` format (named as in
    every other format: `tool_names`)."""
    names = tool_names(resolution)
    return [
        {
            "name": names[a.action_id],
            "title": a.name,
            "description": _description(a),
            "inputSchema": _schema(a),
            "annotations": {
                "title": a.name,
                "idempotentHint": a.idempotent,
                "destructiveHint": a.risk_tier in ("high", "critical"),
            },
        }
        for a in resolution.allowed_actions
    ]
