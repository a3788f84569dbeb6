"""Time for the runtime: clocks, session lifetimes, heartbeats, a rate limiter.

The clock is what the core reads (timestamps, TTLs, windows); the rate
limiter stands alone.

Tests use `ManualClock` so expiry and windows are exact and never sleep:

    clock = ManualClock(start=1_700_000_000.0)
    rt = cra.Runtime(clock=clock)
    clock.advance(61)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Dict, Optional

from . import _core

__all__ = [
    "HeartbeatConfig",
    "ManualClock",
    "SessionTTLConfig",
    "SlidingWindowRateLimiter",
    "SystemClock",
]

#: A clock that moves only when told to: `now()`, `advance(seconds)`, `set(seconds)`.
ManualClock = _core.ManualClock

#: At most `max_calls` per `window_seconds` per key: `acquire(key)`,
#: `retry_after(key)`, `remaining(key)`, `reset(key=None)`.
SlidingWindowRateLimiter = _core.SlidingWindowRateLimiter


class SystemClock:
    """The operating system's wall clock (the default; read natively by the core)."""

    _cra_system_clock = True

    def now(self) -> float:
        return time.time()


@dataclass(frozen=True)
class SessionTTLConfig:
    """End sessions idle for `idle_timeout` seconds, or older than
    `max_lifetime` seconds (`session.ended` with reason `expired`)."""

    idle_timeout: Optional[float] = None
    max_lifetime: Optional[float] = None

    def _core_args(self) -> Dict[str, Any]:
        return {"session_idle_seconds": self.idle_timeout, "session_max_seconds": self.max_lifetime}


@dataclass(frozen=True)
class HeartbeatConfig:
    """End sessions whose agent misses more than `misses_allowed` heartbeats
    of `interval` seconds (`session.ended` with reason `heartbeat_missed`)."""

    interval: float
    misses_allowed: int = 2

    def _core_args(self) -> Dict[str, Any]:
        return {
            "heartbeat_interval_seconds": self.interval,
            "heartbeat_misses_allowed": self.misses_allowed,
        }
