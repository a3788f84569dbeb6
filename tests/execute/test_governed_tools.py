"""Governed tools of a session (`rt.governed(sid)`): executors that belong
to the session, functions that keep their signature, async calls on the
caller's loop, approvals decided in band, and mistakes refused early."""

from __future__ import annotations

import asyncio
import gc
import inspect
import threading
import typing
from typing import Any

import cra
import pytest
from cra import agents
from cra.errors import AuthorizationError, NotFoundError
from execute_helpers import Harness, ops_atlas, value_hash

REFUND = {"order_id": "o-1", "amount": 20}


@pytest.fixture
def h() -> typing.Iterator[Harness]:
    with Harness(executors=False) as harness:
        yield harness


def last_outcome(h: Harness, sid: str) -> dict[str, Any]:
    h.rt.flush()
    outcomes = [e for e in h.rt.events(sid) if e.event_type.startswith("action.")]
    return outcomes[-1].payload


# -- executors per session --------------------------------------------------------------


def test_each_session_runs_its_own_executor(h: Harness) -> None:
    other = h.rt.create_session("agent-2", "Operate")
    alice = h.rt.governed(h.sid).wrap(lambda **p: {"user": "alice", **p}, "api.echo")
    bob = h.rt.governed(other).wrap(lambda **p: {"user": "bob", **p}, "api.echo")
    assert alice(x=1) == {"user": "alice", "x": 1}
    assert bob(x=2) == {"user": "bob", "x": 2}
    assert alice(x=3) == {"user": "alice", "x": 3}


def test_a_session_executor_comes_before_the_runtime_one_and_serves_rt_execute(h: Harness) -> None:
    h.rt.register_executor("api.echo", lambda **p: "runtime")
    other = h.rt.create_session("agent-2", "Operate")
    h.rt.governed(h.sid).register("api.echo", lambda **p: "session")
    assert h.rt.governed(h.sid).call("api.echo") == "session"
    assert h.rt.governed(other).call("api.echo") == "runtime"
    # A request made by hand in the session finds the session's executor too.
    assert h.execute("api.echo", {}).result == "session"


def test_the_call_answers_what_the_executor_returned(h: Harness) -> None:
    gt = h.rt.governed(h.sid)
    gt.register("api.echo", lambda **p: (1, 2))
    assert gt.call("api.echo") == (1, 2)  # the object itself; the trace has [1, 2]
    assert last_outcome(h, h.sid)["result_hash"] == value_hash([1, 2])


# -- signatures -------------------------------------------------------------------------


def lookup(order_id: str, amount: float = 1.0, *, note: str | None = None) -> dict[str, Any]:
    """Looks an order up."""
    return {"order_id": order_id, "amount": amount, "note": note}


def test_a_governed_function_keeps_name_doc_signature_and_resolved_hints(h: Harness) -> None:
    f = h.rt.governed(h.sid).wrap(lookup, "api.echo")
    assert f.__name__ == "lookup" and f.__doc__ == "Looks an order up."
    assert list(inspect.signature(f).parameters) == ["order_id", "amount", "note"]
    assert inspect.signature(f).parameters["amount"].default == 1.0
    hints = typing.get_type_hints(f)
    assert hints["order_id"] is str and hints["amount"] is float
    assert hints["note"] == typing.Optional[str]
    assert f.__annotations__["order_id"] is str  # evaluated, not the string "str"


def test_positional_and_keyword_arguments_bind_through_the_signature(h: Harness) -> None:
    f = h.rt.governed(h.sid).wrap(lookup, "api.echo")
    assert f("o-1", 5, note="n") == {"order_id": "o-1", "amount": 5, "note": "n"}
    assert f("o-2") == {"order_id": "o-2", "amount": 1.0, "note": None}
    with pytest.raises(TypeError):
        f("o-1", 1, 2)
    with pytest.raises(TypeError):
        f()


def test_an_async_function_stays_a_coroutine_function(h: Harness) -> None:
    async def slow(order_id: str) -> str:
        return order_id

    f = h.rt.governed(h.sid).wrap(slow, "api.echo")
    assert inspect.iscoroutinefunction(f)
    assert asyncio.run(f("o-9")) == "o-9"


# -- async ------------------------------------------------------------------------------


def test_an_async_executor_runs_on_the_callers_loop_and_others_keep_running(h: Harness) -> None:
    gt = h.rt.governed(h.sid)
    seen: dict[str, Any] = {}

    async def slow_tool(**p: Any) -> str:
        seen["loop"] = asyncio.get_running_loop()
        seen["thread"] = threading.get_ident()
        await asyncio.sleep(0.3)
        return "done"

    gt.register("api.echo", slow_tool)

    async def main() -> int:
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        t = asyncio.create_task(ticker())
        assert await gt.acall("api.echo") == "done"
        stop.set()
        await t
        assert seen["loop"] is asyncio.get_running_loop()
        return ticks

    assert asyncio.run(main()) >= 10
    assert seen["thread"] == threading.get_ident()
    assert last_outcome(h, h.sid)["result_hash"] == value_hash("done")


def test_acall_refusals_and_failures_raise_typed(h: Harness) -> None:
    gt = h.rt.governed(h.sid)

    async def boom(**p: Any) -> None:
        raise ValueError("no")

    gt.register("api.echo", boom)
    with pytest.raises(agents.ActionFailed, match="no"):
        asyncio.run(gt.acall("api.echo"))
    with pytest.raises(agents.ActionDenied):
        asyncio.run(gt.acall("db.drop"))


def test_rt_aresolve_and_aexecute(h: Harness) -> None:
    async def tool(**p: Any) -> dict[str, Any]:
        await asyncio.sleep(0)
        return p

    h.rt.register_executor("api.echo", tool)

    async def main() -> cra.ExecuteResponse:
        res = await h.rt.aresolve(h.resolve_request())
        req = h.execute_request("api.echo", {"a": 1}, resolution=res)
        return await h.rt.aexecute(req)

    r = asyncio.run(main())
    assert (r.status, r.result) == ("success", {"a": 1})


def test_a_started_execution_nobody_finishes_is_recorded_as_failed(h: Harness) -> None:
    h.rt.register_executor("api.echo", lambda **p: p)
    h.resolve()
    started = h.rt._front.begin(h.execute_request("api.echo", {}))
    assert isinstance(started, cra._core.Started)
    del started
    gc.collect()
    payload = last_outcome(h, h.sid)
    assert "abandoned" in payload["error_message"]


# -- approvals in band ------------------------------------------------------------------


def test_on_approval_grants_with_the_approvers_identity(h: Harness) -> None:
    asked: list[agents.PendingApproval] = []

    def decide(p: agents.PendingApproval) -> agents.Grant:
        asked.append(p)
        return agents.Grant("alice", note="ok")

    gt = h.rt.governed(h.sid, on_approval=decide)
    gt.register("payment.refund", lambda **p: {"refunded": p["amount"]})
    assert gt.call("payment.refund", **REFUND) == {"refunded": 20}
    (p,) = asked
    assert (p.action_id, p.parameters, p.agent_id) == ("payment.refund", REFUND, h.agent_id)
    h.rt.flush()
    approved = [e.payload for e in h.rt.events(h.sid) if e.event_type == "action.approved"]
    assert [p.get("approver") for p in approved] == ["alice", None]  # the grant, then its use


def test_async_on_approval_rejects_and_the_call_is_denied(h: Harness) -> None:
    async def decide(p: agents.PendingApproval) -> agents.Reject:
        await asyncio.sleep(0)
        return agents.Reject("bob", note="too much")

    gt = h.rt.governed(h.sid, on_approval=decide)
    gt.register("payment.refund", lambda **p: "ran")
    with pytest.raises(agents.ActionDenied):
        asyncio.run(gt.acall("payment.refund", **REFUND))


def test_the_agent_cannot_approve_itself(h: Harness) -> None:
    gt = h.rt.governed(h.sid, on_approval=lambda p: agents.Grant(h.agent_id))
    gt.register("payment.refund", lambda **p: "ran")
    with pytest.raises(AuthorizationError) as e:
        gt.call("payment.refund", **REFUND)
    assert e.value.code == "SELF_APPROVAL"


def test_wait_for_approval_waits_for_another_thread(h: Harness) -> None:
    gt = h.rt.governed(h.sid)
    gt.register("payment.refund", lambda **p: "ran")

    def approver() -> None:
        for _ in range(500):
            pending = h.rt.pending_approvals(h.sid)
            if pending:
                h.rt.approve(pending[0]["approval_id"], "carol")
                return
            threading.Event().wait(0.01)

    t = threading.Thread(target=approver)
    t.start()
    assert gt.call("payment.refund", wait_for_approval=10, **REFUND) == "ran"
    t.join()


def test_wait_for_approval_times_out_pending(h: Harness) -> None:
    gt = h.rt.governed(h.sid, wait_for_approval=0.05)
    gt.register("payment.refund", lambda **p: "ran")
    with pytest.raises(agents.ApprovalPending) as e:
        gt.call("payment.refund", **REFUND)
    assert e.value.approval_id


# -- mistakes caught early --------------------------------------------------------------


def test_an_undeclared_parameter_is_invalid_and_not_counted(h: Harness) -> None:
    # REFUND_SCHEMA names its properties and says nothing of others.
    calls: list[Any] = []
    gt = h.rt.governed(h.sid, on_approval=lambda p: agents.Grant("alice"))
    gt.register("payment.refund", lambda **p: calls.append(p))
    with pytest.raises(agents.ActionFailed) as e:
        gt.call("payment.refund", order_id="o", amount=1, sneaky=True)
    assert e.value.code == "INVALID_PARAMETERS"
    assert calls == []


def test_an_open_schema_still_takes_extra_parameters() -> None:
    from resolve_helpers import action

    loose = action(
        "api.loose",
        parameters_schema={"type": "object", "properties": {"a": {}}, "additionalProperties": True},
    )
    with Harness(ops_atlas(extra_actions=[loose]), executors=False) as h:
        gt = h.rt.governed(h.sid)
        gt.register("api.loose", lambda **p: p)
        assert gt.call("api.loose", a=1, b=2) == {"a": 1, "b": 2}


def test_registering_an_unknown_action_says_did_you_mean(h: Harness) -> None:
    with pytest.raises(NotFoundError) as e:
        h.rt.register_executor("api.ecko", lambda **p: p)
    assert e.value.code == "ACTION_NOT_FOUND"
    assert 'did you mean "api.echo"' in str(e.value)
    with pytest.raises(NotFoundError):
        h.rt.governed(h.sid).register("nothing.here", lambda **p: p)


def test_executing_a_typo_says_did_you_mean(h: Harness) -> None:
    gt = h.rt.governed(h.sid)
    with pytest.raises(agents.ActionDenied) as e:
        gt.call("api.ech")
    assert e.value.details["did_you_mean"] == "api.echo"
    assert "did you mean api.echo" in str(e.value)


def test_check_lists_actions_without_an_executor(h: Harness) -> None:
    assert "api.echo" in h.rt.check()
    h.rt.register_executor("api.echo", lambda **p: p)
    assert "api.echo" not in h.rt.check()
    gt = h.rt.governed(h.sid)
    assert "api.call" in gt.check() and "db.drop" not in gt.check()
    gt.register("api.call", lambda **p: p)
    assert "api.call" not in gt.check()


def test_invalid_parameters_do_not_use_up_a_rate_limit(h: Harness) -> None:
    # api.call: 2 per minute; a refused call gives its count back.
    gt = h.rt.governed(h.sid)
    gt.register("api.call", lambda **p: "ok")
    for _ in range(3):
        with pytest.raises(agents.ActionFailed) as e:
            gt.call("api.call", path="/x", extra=1)
        assert e.value.code == "INVALID_PARAMETERS"
    assert [gt.call("api.call", path="/x") for _ in range(2)] == ["ok", "ok"]
    with pytest.raises(agents.RateLimited):
        gt.call("api.call", path="/x")
