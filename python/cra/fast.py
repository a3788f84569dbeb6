"""The latency-first surface: resolve and record with the least work per call.

The same core as `cra`, for agents that resolve and record in a tight loop:

    resolver = cra.fast.resolver(rt, session_id)
    res = resolver.resolve("Find the customer's ticket")   # a core Resolution handle
    res.is_allowed("ticket.lookup")
    record = cra.fast.recorder(rt)                          # rt.record without any wrapper
"""

from __future__ import annotations

from typing import Any, Callable, Dict

from . import _core
from .runtime import Runtime

__all__ = ["Resolution", "PreparedResolver", "resolver", "recorder"]

Resolution = _core.Resolution
PreparedResolver = _core.PreparedResolver


def resolver(rt: Runtime, session_id: str) -> _core.PreparedResolver:
    """A resolver bound to one session: `resolve(goal, risk_tier=None, atlas_ids=None,
    required_capabilities=None, context_hints=None)` mints the request id and
    timestamp itself and returns the core resolution handle."""
    return rt._core.prepare(session_id)


def recorder(rt: Runtime) -> Callable[[str, str, Dict[str, Any]], None]:
    """The core's `record(session_id, event_type, payload)`, unwrapped."""
    return rt._core.record
