"""The `cra` logger: refused and failed executions, approvals asked for and
decided. Successful calls are never logged (the hot path does no logging
work at all), and a message is only formatted when its level is enabled:
`logging.getLogger("cra").setLevel(logging.INFO)` to see refusals.

Levels: a denial, a rate limit or budget, and a wait for approval are INFO;
invalid parameters and executor failures are WARNING; approval decisions
are INFO."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .execute import ExecuteResponse

__all__ = ["answered", "decided", "logger"]

logger = logging.getLogger("cra")
# A library's logger stays silent until the application configures logging.
logger.addHandler(logging.NullHandler())

#: The level of an answer, by status (error answers are WARNING).
_LEVELS = {"denied": logging.INFO, "pending_approval": logging.INFO}


def answered(response: ExecuteResponse) -> None:
    """Logs an execute answer that is not a success (called by the core)."""
    r = response._r
    level = _LEVELS.get(r.status, logging.WARNING)
    if not logger.isEnabledFor(level):
        return
    err = response.error
    details = err.details if err else {}
    action = details.get("action_id")
    logger.log(
        level,
        "execute %s: %s %s (%sexecution %s)",
        r.status,
        err.code if err else "",
        err.message if err else "",
        f"action {action}, " if action else "",
        r.execution_id,
    )


def decided(decision: Any, approval_id: str, granted: bool) -> None:
    """Logs an approval decision."""
    if logger.isEnabledFor(logging.INFO):
        logger.info(
            "approval %s %s by %s",
            approval_id,
            "granted" if granted else "rejected",
            decision,
        )
