"""Executors of execute: registration and the action decorator, atlas
executor names, replacement, wrong parameters, async executors (also from a
running event loop), durations, and execution ids.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from cra.execute import ExecuteResponse
from execute_helpers import (
    Calls,
    Harness,
    code,
    ops_atlas,
    outcome_events,
    payload_of,
)
from resolve_helpers import action


def test_register_executor_gets_the_parameters_as_keywords(h: Harness) -> None:
    seen: dict[str, Any] = {}

    def call(path: str, retries: int = 0) -> dict[str, Any]:
        seen.update(path=path, retries=retries)
        return {"ok": True}

    h.rt.register_executor("api.call", call)
    assert h.execute("api.call", {"path": "/x", "retries": 2}).result == {"ok": True}
    assert seen == {"path": "/x", "retries": 2}


def test_register_executor_needs_a_callable(h: Harness) -> None:
    with pytest.raises(TypeError):
        h.rt.register_executor("api.echo", "not callable")  # type: ignore[arg-type]


def test_action_decorator_registers_and_returns_the_function(h: Harness) -> None:
    @h.rt.action("api.echo")
    def echo_twice(**p: Any) -> list[Any]:
        return [p, p]

    assert echo_twice(a=1) == [{"a": 1}, {"a": 1}]
    assert h.execute("api.echo", {"a": 2}).result == [{"a": 2}, {"a": 2}]


def test_executor_found_by_the_atlas_executor_name() -> None:
    atlas = ops_atlas(extra_actions=[action("api.named", executor="http_get")])
    with Harness(atlas, executors=False) as h:
        h.rt.register_executor("http_get", lambda **p: "by name")
        h.resolve()
        assert h.execute("api.named").result == "by name"
        # An executor registered for the action id itself takes precedence.
        h.rt.register_executor("api.named", lambda **p: "by id")
        assert h.execute("api.named").result == "by id"


def test_later_registration_replaces_the_executor(h: Harness) -> None:
    h.rt.register_executor("api.echo", lambda **p: 1)
    h.rt.register_executor("api.echo", lambda **p: 2)
    assert h.execute("api.echo").result == 2


def test_executor_with_wrong_parameters_is_an_execution_failure(h: Harness) -> None:
    h.rt.register_executor("api.echo", lambda only: only)
    r = h.execute("api.echo", {"other": 1})
    assert (r.status, code(r)) == ("error", "EXECUTION_FAILED")
    assert "other" in (r.error.message if r.error else "")


async def async_echo(**parameters: Any) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"async": parameters}


def test_async_executor(h: Harness) -> None:
    h.rt.register_executor("api.echo", async_echo)
    r = h.execute("api.echo", {"n": 1})
    assert (r.status, r.result) == ("success", {"async": {"n": 1}})
    assert payload_of(h.events(start=h.count() - 4), "action.executed")["duration_ms"] >= 0


def test_async_executor_called_from_a_running_event_loop(h: Harness) -> None:
    h.rt.register_executor("api.echo", async_echo)

    async def agent() -> ExecuteResponse:
        return h.execute("api.echo", {"n": 2})

    r = asyncio.run(agent())
    assert (r.status, r.result) == ("success", {"async": {"n": 2}})


def test_async_executor_failure(h: Harness) -> None:
    async def boom(**_: Any) -> None:
        await asyncio.sleep(0)
        raise ValueError("async trouble")

    h.rt.register_executor("api.echo", boom)
    r = h.execute("api.echo")
    assert (code(r), r.error.message if r.error else None) == ("EXECUTION_FAILED", "async trouble")

    async def agent() -> ExecuteResponse:
        return h.execute("api.echo")

    assert code(asyncio.run(agent())) == "EXECUTION_FAILED"


def test_duration_is_recorded_for_successes_only(h: Harness) -> None:
    _, ok = outcome_events(h, "api.echo")
    duration = payload_of(ok, "action.executed")["duration_ms"]
    assert isinstance(duration, float) and duration >= 0
    h.rt.register_executor("api.echo", lambda: 1 / 0)
    _, failed = outcome_events(h, "api.echo")
    assert "duration_ms" not in payload_of(failed, "action.failed")


def test_executor_is_not_called_for_answers_without_a_run(h: Harness) -> None:
    calls = Calls()
    for action_id in ("api.call", "payment.refund", "db.drop", "credit.use"):
        h.rt.register_executor(action_id, calls)
    h.execute("api.call", {"path": 1})
    h.execute("payment.refund", {"order_id": "o", "amount": 1})
    h.execute("db.drop")
    h.execute("credit.use")
    h.execute("credit.use")
    h.execute("credit.use")
    assert calls.count == 2


def test_every_execution_gets_its_own_id(h: Harness) -> None:
    ids = {h.execute("api.echo", {"i": i}).execution_id for i in range(5)}
    assert len(ids) == 5
