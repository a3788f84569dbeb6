"""In-band approvals: what a governed call hands `on_approval` (a
`PendingApproval`), what it answers (`Grant` or `Reject`, with the deciding
person's identity), and waiting for a decision made elsewhere."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, Optional, Union

from .errors import AuthorizationError, ValidationError

if TYPE_CHECKING:
    from .runtime import Runtime

__all__ = ["Decision", "Grant", "PendingApproval", "Reject"]

#: How often a wait for a decision looks again (seconds, growing to the cap).
POLL_START = 0.005
POLL_CAP = 0.05


@dataclass(frozen=True)
class PendingApproval:
    """An execution waiting for a human: what it would do and why it waits."""

    approval_id: str
    session_id: str
    agent_id: str
    action_id: str
    parameters: Dict[str, Any]
    parameters_hash: Optional[str]
    reason: str


@dataclass(frozen=True)
class Grant:
    """Lets the action run: once with exactly these parameters (default),
    or for the rest of the resolution (`scope="resolution"`)."""

    approver: str
    note: Optional[str] = None
    scope: str = "once"


@dataclass(frozen=True)
class Reject:
    """Refuses the action: it is denied from now on in this resolution."""

    approver: str
    note: Optional[str] = None
    kind: str = field(default="reject", init=False)


Decision = Union[Grant, Reject]


def apply(rt: Runtime, pending: PendingApproval, decision: Any) -> bool:
    """Records `decision` on `pending` (as `approve`/`reject` do); False
    when there is none (`None`: the call stays pending). The governed
    cannot govern: the session's own agent is no approver."""
    if decision is None:
        return False
    if not isinstance(decision, (Grant, Reject)):
        raise ValidationError(
            f"on_approval must answer cra.agents.Grant, Reject or None, not {type(decision).__name__}",
            code="INVALID_APPROVAL_DECISION",
        )
    if not decision.approver or decision.approver == pending.agent_id:
        raise AuthorizationError(
            f"{pending.agent_id!r} cannot decide on its own action {pending.action_id}: "
            "the approver must be someone else",
            code="SELF_APPROVAL",
            details={"approval_id": pending.approval_id},
        )
    if isinstance(decision, Grant):
        rt.approve(
            pending.approval_id,
            decision.approver,
            note=decision.note,
            action_id=pending.action_id,
            parameters_hash=pending.parameters_hash,
            scope=decision.scope,
        )
    else:
        rt.reject(pending.approval_id, decision.approver, note=decision.note)
    return True


def _is_pending(rt: Runtime, pending: PendingApproval) -> bool:
    state = rt._core.approval_state(
        pending.approval_id, pending.action_id, pending.parameters_hash or ""
    )
    return state == "waiting"


def wait_decided(rt: Runtime, pending: PendingApproval, timeout: float) -> bool:
    """Waits until someone decides on `pending` (another thread, or the
    approvals endpoint of a server on this runtime); False on timeout."""
    deadline = time.monotonic() + max(0.0, timeout)
    pause = POLL_START
    while _is_pending(rt, pending):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(pause, left))
        pause = min(pause * 2, POLL_CAP)
    return True


async def await_decided(rt: Runtime, pending: PendingApproval, timeout: float) -> bool:
    """`wait_decided` without blocking the event loop."""
    deadline = time.monotonic() + max(0.0, timeout)
    pause = POLL_START
    while _is_pending(rt, pending):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        await asyncio.sleep(min(pause, left))
        pause = min(pause * 2, POLL_CAP)
    return True
