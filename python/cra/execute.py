"""Execute: the response, the executor registry, and running an executor.

An executor runs between the core's checks and its record of the outcome."""

from __future__ import annotations

import asyncio
import difflib
import inspect
import json
import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Optional, Sequence, Tuple

from . import _core
from .errors import NotFoundError

__all__ = ["ExecuteResponse", "ExecutionError", "Executors"]

Executor = Callable[..., Any]

#: HTTP status of an execute answer, by status and error code.
_HTTP = {"success": 200, "pending_approval": 202, "denied": 403}


@dataclass(frozen=True)
class ExecutionError:
    code: str
    message: str
    details: Dict[str, Any]


class ExecuteResponse:
    """The answer to an execute request: `success`, `error`, `denied` or
    `pending_approval`, with the executor's result or the error."""

    # Made by the core (`_core.Front`): allocated as `object()` allocates,
    # with the core's handle stored in the `_r` slot (so: no `__new__` or
    # `__init__` here).
    __slots__ = ("_r",)
    _r: _core.ExecuteResponse

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("ExecuteResponse is immutable")

    @property
    def status(self) -> str:
        return self._r.status

    @property
    def ok(self) -> bool:
        return self._r.status == "success"

    @property
    def execution_id(self) -> str:
        return self._r.execution_id

    @property
    def request_id(self) -> str:
        return self._r.request_id

    @property
    def resolution_id(self) -> str:
        return self._r.resolution_id

    @property
    def timestamp(self) -> str:
        return self._r.timestamp

    @property
    def trace_id(self) -> str:
        return self._r.trace_id

    @property
    def result(self) -> Any:
        text = self._r.result_json
        return None if text is None else json.loads(text)

    @property
    def error(self) -> Optional[ExecutionError]:
        code = self._r.error_code
        if code is None:
            return None
        details = json.loads(self._r.error_details_json or "{}")
        return ExecutionError(code, self._r.error_message or "", details)

    @property
    def retry_after(self) -> Optional[float]:
        """Seconds until a rate limit has room again (rate-limited answers only)."""
        return self._r.retry_after

    @property
    def http_status(self) -> int:
        """The HTTP status this answer is served with (§9)."""
        code = self._r.error_code
        if code in ("RATE_LIMIT_EXCEEDED", "BUDGET_EXCEEDED"):
            return 429
        if code == "INVALID_PARAMETERS":
            return 422
        if self._r.status == "error":
            return 502
        return _HTTP[self._r.status]

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = json.loads(self._r.to_json())
        return out

    def to_json(self) -> str:
        """The answer as JSON text (what `to_dict` parses)."""
        return str(self._r.to_json())

    def __repr__(self) -> str:
        err = f" {self._r.error_code}" if self._r.error_code else ""
        return f"ExecuteResponse({self.status}{err}, execution_id={self.execution_id})"


def settle(value: Any) -> Any:
    """An executor's return value, awaited first if it is awaitable (the
    core calls this for values that are not plain JSON)."""
    return _run_awaitable(value) if inspect.isawaitable(value) else value


def _run_awaitable(value: Any) -> Any:
    """Runs a coroutine to completion, also from inside a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(value)
    box: Dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(value)
        except BaseException as e:
            box["error"] = e

    t = threading.Thread(target=target, name="cra-async-executor")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


class Executors:
    """Callables by action id (or by the atlas's `executor` name); the core
    looks them up in a session's own registry (`sessions[session_id]`,
    filled by its governed tools) first, then in `by_key`, and calls them
    with the request's parameters."""

    def __init__(self) -> None:
        self.by_key: Dict[str, Executor] = {}
        self.sessions: Dict[str, Dict[str, Executor]] = {}

    def register(self, key: str, fn: Executor) -> None:
        if not callable(fn):
            raise TypeError(f"executor for {key!r} is not callable")
        self.by_key[key] = fn

    def of_session(self, session_id: str) -> Dict[str, Executor]:
        """The session's own registry (made on first use)."""
        return self.sessions.setdefault(session_id, {})

    def forget_sessions(self, session_ids: Iterable[str]) -> None:
        for sid in session_ids:
            self.sessions.pop(sid, None)


def check_key(key: str, loaded: Sequence[Tuple[str, Optional[str]]]) -> None:
    """Raises `NotFoundError` (`ACTION_NOT_FOUND`, with "did you mean") when
    no loaded action has `key` as its id or executor name."""
    if not isinstance(key, str):
        raise TypeError(f"an executor key is a string, not {type(key).__name__}")
    known = {a for a, _ in loaded} | {x for _, x in loaded if x}
    if key in known:
        return
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    hint = f'; did you mean "{close[0]}"?' if close else ""
    loaded_text = "no atlas is loaded" if not loaded else "no loaded atlas has it"
    raise NotFoundError(
        f"no action or executor name {key!r}: {loaded_text}{hint}",
        code="ACTION_NOT_FOUND",
        details={"key": key, **({"did_you_mean": close[0]} if close else {})},
    )
