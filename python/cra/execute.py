"""Execute: the response, the executor registry, and running an executor
between the core's checks and its record of the outcome."""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Union

from . import _core

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

    __slots__ = ("_r",)
    _r: _core.ExecuteResponse

    def __init__(self, core: _core.ExecuteResponse) -> None:
        object.__setattr__(self, "_r", core)

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

    def __repr__(self) -> str:
        err = f" {self._r.error_code}" if self._r.error_code else ""
        return f"ExecuteResponse({self.status}{err}, execution_id={self.execution_id})"


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
    """Callables by action id (or by the atlas's `executor` name)."""

    def __init__(self) -> None:
        self._by_key: Dict[str, Executor] = {}

    def register(self, key: str, fn: Executor) -> None:
        if not callable(fn):
            raise TypeError(f"executor for {key!r} is not callable")
        self._by_key[key] = fn

    def find(self, action_id: str, executor_name: Optional[str]) -> Optional[Executor]:
        fn = self._by_key.get(action_id)
        if fn is None and executor_name:
            fn = self._by_key.get(executor_name)
        return fn

    def run(
        self, core: _core.Runtime, begun: Union[_core.ExecuteResponse, _core.ExecuteTicket]
    ) -> ExecuteResponse:
        """Runs the executor of a checked execution and records the outcome."""
        if isinstance(begun, _core.ExecuteResponse):
            return ExecuteResponse(begun)
        fn = self.find(begun.action_id, begun.executor)
        if fn is None:
            return ExecuteResponse(core.execute_finish(begun, no_executor=True))
        params = json.loads(begun.parameters_json)
        t0 = time.perf_counter()
        try:
            result = fn(**params)
            if inspect.isawaitable(result):
                result = _run_awaitable(result)
        except Exception as e:
            ms = (time.perf_counter() - t0) * 1000.0
            details = {"exception": type(e).__name__}
            return ExecuteResponse(
                core.execute_finish(
                    begun,
                    error=("EXECUTION_FAILED", str(e) or type(e).__name__, details),
                    duration_ms=ms,
                )
            )
        except BaseException as e:
            ms = (time.perf_counter() - t0) * 1000.0
            core.execute_finish(
                begun,
                error=("EXECUTION_FAILED", f"interrupted: {type(e).__name__}", None),
                duration_ms=ms,
            )
            raise
        ms = (time.perf_counter() - t0) * 1000.0
        return ExecuteResponse(core.execute_finish(begun, result=result, duration_ms=ms))
