"""Idempotency keys (CARP §5): the same key and request within a session
answer with the first response without running again; other parameters (or
another action) are a conflict; keys are per session; only terminal
answers (success, error) are remembered, checked after every other check."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from cra.errors import ConflictError
from execute_helpers import Calls, Harness, code, ops_atlas
from resolve_helpers import policy


@pytest.fixture
def calls(h: Harness) -> Calls:
    c = Calls()
    h.rt.register_executor("api.echo", c)
    h.rt.register_executor("api.call", c)
    return c


def test_same_key_same_parameters_answers_with_the_first_response(h: Harness, calls: Calls) -> None:
    first = h.execute("api.echo", {"n": 1}, idempotency_key="key-1")
    h.clock.advance(5)
    again = h.execute("api.echo", {"n": 1}, idempotency_key="key-1")
    assert calls.count == 1
    assert again.execution_id == first.execution_id
    assert again.to_dict() == first.to_dict()
    assert again.result == {"n": 1}


def test_a_replay_is_traced_without_running(h: Harness, calls: Calls) -> None:
    h.execute("api.echo", {"n": 1}, idempotency_key="key-1")
    n = h.count()
    req = h.execute_request("api.echo", {"n": 1}, idempotency_key="key-1")
    h.rt.execute(req)
    events = h.events(start=n)
    assert [e.event_type for e in events] == ["carp.request.received", "action.requested"]
    assert events[0].payload["request_id"] == req["request_id"]
    assert h.rt.verify(h.sid).valid


def test_a_replay_does_not_count_toward_limits(h: Harness, calls: Calls) -> None:
    assert h.execute("api.call", {"path": "/a"}, idempotency_key="k").status == "success"
    for _ in range(3):
        assert h.execute("api.call", {"path": "/a"}, idempotency_key="k").status == "success"
    assert h.execute("api.call", {"path": "/b"}).status == "success"
    assert code(h.execute("api.call", {"path": "/c"})) == "RATE_LIMIT_EXCEEDED"
    assert calls.count == 2


def test_same_key_other_parameters_is_a_conflict(h: Harness, calls: Calls) -> None:
    h.execute("api.echo", {"n": 1}, idempotency_key="key-1")
    n = h.count()
    with pytest.raises(ConflictError) as info:
        h.execute("api.echo", {"n": 2}, idempotency_key="key-1")
    err = info.value
    assert (err.code, err.category, err.http_status) == ("IDEMPOTENCY_CONFLICT", "conflict", 409)
    assert calls.count == 1
    assert h.types(start=n) == ["error.occurred"]
    assert h.events()[-1].payload["code"] == "IDEMPOTENCY_CONFLICT"


def test_same_key_same_parameters_for_another_action_is_a_conflict(
    h: Harness, calls: Calls
) -> None:
    h.execute("api.echo", {"path": "/a"}, idempotency_key="key-1")
    with pytest.raises(ConflictError):
        h.execute("api.call", {"path": "/a"}, idempotency_key="key-1")
    assert calls.count == 1


def test_a_conflict_does_not_use_up_the_request_id(h: Harness, calls: Calls) -> None:
    h.execute("api.echo", {"n": 1}, idempotency_key="key-1")
    req = h.execute_request("api.echo", {"n": 2}, idempotency_key="key-1")
    with pytest.raises(ConflictError):
        h.rt.execute(req)
    req["execution"]["idempotency_key"] = "key-2"
    assert h.rt.execute(req).status == "success"


def test_a_conflict_does_not_count_toward_limits(h: Harness, calls: Calls) -> None:
    h.execute("api.call", {"path": "/a"}, idempotency_key="k")
    for _ in range(3):
        with pytest.raises(ConflictError):
            h.execute("api.call", {"path": "/other"}, idempotency_key="k")
    assert h.execute("api.call", {"path": "/b"}).status == "success"


def test_parameters_are_compared_canonically(h: Harness, calls: Calls) -> None:
    first = h.execute("api.echo", {"a": 1, "b": [1, 2]}, idempotency_key="k")
    again = h.execute("api.echo", {"b": [1, 2], "a": 1}, idempotency_key="k")
    assert again.execution_id == first.execution_id
    with pytest.raises(ConflictError):
        h.execute("api.echo", {"a": 1, "b": [2, 1]}, idempotency_key="k")


def test_keys_are_per_session(h: Harness, calls: Calls) -> None:
    other = h.session()
    h.resolve(other)
    mine = h.execute("api.echo", {"n": 1}, idempotency_key="shared")
    theirs = h.execute("api.echo", {"n": 1}, idempotency_key="shared", sid=other)
    assert theirs.execution_id != mine.execution_id
    assert calls.count == 2
    # Other parameters under the same key are fine in the other session too.
    h.execute("api.echo", {"n": 2}, idempotency_key="only-theirs", sid=other)
    assert h.execute("api.echo", {"n": 3}, idempotency_key="only-theirs").status == "success"


def test_a_key_outlives_its_resolution(h: Harness, calls: Calls) -> None:
    first = h.execute("api.echo", {"n": 1}, idempotency_key="k")
    h.clock.advance(3600)
    h.resolve()
    again = h.execute("api.echo", {"n": 1}, idempotency_key="k")
    assert again.execution_id == first.execution_id
    assert calls.count == 1


def test_different_keys_run_again(h: Harness, calls: Calls) -> None:
    a = h.execute("api.echo", {"n": 1}, idempotency_key="a")
    b = h.execute("api.echo", {"n": 1}, idempotency_key="b")
    c = h.execute("api.echo", {"n": 1})
    assert len({a.execution_id, b.execution_id, c.execution_id}) == 3
    assert calls.count == 3


# -- what is remembered -----------------------------------------------------------------


def test_a_failure_is_remembered(h: Harness) -> None:
    runs: list[int] = []

    def flaky(**_: Any) -> str:
        runs.append(1)
        if len(runs) == 1:
            raise RuntimeError("timeout")
        return "ok"

    h.rt.register_executor("api.echo", flaky)
    first = h.execute("api.echo", {}, idempotency_key="pay-1")
    again = h.execute("api.echo", {}, idempotency_key="pay-1")
    assert code(again) == "EXECUTION_FAILED"
    assert again.execution_id == first.execution_id
    assert len(runs) == 1


def test_a_rate_limit_denial_is_not_remembered(h: Harness, calls: Calls) -> None:
    h.execute("api.call", {"path": "/a"})
    h.execute("api.call", {"path": "/b"})
    denied = h.execute("api.call", {"path": "/c"}, idempotency_key="k")
    assert code(denied) == "RATE_LIMIT_EXCEEDED"
    h.clock.advance(60)
    retry = h.execute("api.call", {"path": "/c"}, idempotency_key="k")
    assert retry.status == "success"
    assert retry.execution_id != denied.execution_id
    assert calls.count == 3


def test_a_denial_is_not_remembered(h: Harness) -> None:
    denied = h.execute("db.drop", {"n": 1}, idempotency_key="k")
    assert denied.status == "denied"
    # The key is still free for another request.
    assert h.execute("api.echo", {"n": 2}, idempotency_key="k").status == "success"


def test_a_pending_answer_is_not_remembered_and_the_retry_runs(h: Harness) -> None:
    refunds = Calls()
    h.rt.register_executor("payment.refund", refunds)
    params = {"order_id": "o-1", "amount": 20}
    waiting = h.execute("payment.refund", params, idempotency_key="refund-o-1")
    assert waiting.status == "pending_approval"
    approval_id = h.resolution_of(h.sid).decision.approval_id
    assert approval_id is not None
    h.rt.approve(approval_id, "alice")
    ran = h.execute("payment.refund", params, idempotency_key="refund-o-1")
    assert ran.status == "success"
    assert refunds.count == 1


def test_a_retry_of_an_approved_once_execution_asks_again_then_replays(h: Harness) -> None:
    # Approval is checked before the key (§5 order): the once-grant was spent by
    # the first execution, so the retry waits; granted, it answers with the first
    # response without running, and that grant is spent by it.
    refunds = Calls()
    h.rt.register_executor("payment.refund", refunds)
    params = {"order_id": "o-1", "amount": 20}
    approval_id = h.resolution_of(h.sid).decision.approval_id
    assert approval_id is not None
    h.execute("payment.refund", params, idempotency_key="refund-o-1")
    h.rt.approve(approval_id, "alice")
    ran = h.execute("payment.refund", params, idempotency_key="refund-o-1")
    retry = h.execute("payment.refund", params, idempotency_key="refund-o-1")
    assert retry.status == "pending_approval"
    h.rt.approve(approval_id, "alice")
    replay = h.execute("payment.refund", params, idempotency_key="refund-o-1")
    assert replay.execution_id == ran.execution_id
    assert refunds.count == 1
    assert h.execute("payment.refund", params).status == "pending_approval"


def test_invalid_parameters_are_not_remembered(h: Harness, calls: Calls) -> None:
    bad = h.execute("api.call", {"path": 1}, idempotency_key="k")
    assert code(bad) == "INVALID_PARAMETERS"
    fixed = h.execute("api.call", {"path": "/a"}, idempotency_key="k")
    assert fixed.status == "success"
    assert calls.count == 1


# -- the key is checked after the governance checks -------------------------------------


def test_a_replay_is_checked_against_current_policy(h: Harness, calls: Calls) -> None:
    assert h.execute("api.echo", {"n": 1}, idempotency_key="k").status == "success"
    h.rt.load_atlas(
        ops_atlas(version="1.1.0", extra_policies=[policy("echo-off", "deny", ["api.echo"])]),
        replace=True,
    )
    r = h.execute("api.echo", {"n": 1}, idempotency_key="k")
    assert (r.status, code(r)) == ("denied", "ACTION_NOT_ALLOWED")
    assert calls.count == 1


def test_a_replay_is_checked_against_the_rate_limit(h: Harness, calls: Calls) -> None:
    first = h.execute("api.call", {"path": "/a"}, idempotency_key="k")
    h.execute("api.call", {"path": "/b"})
    assert code(h.execute("api.call", {"path": "/a"}, idempotency_key="k")) == "RATE_LIMIT_EXCEEDED"
    h.clock.advance(60)
    assert h.execute("api.call", {"path": "/a"}, idempotency_key="k").execution_id == (
        first.execution_id
    )
    assert calls.count == 2


def test_a_key_that_is_still_running_is_a_conflict(h: Harness) -> None:
    entered = threading.Event()
    release = threading.Event()

    def slow(**_: Any) -> str:
        entered.set()
        release.wait(30)
        return "done"

    h.rt.register_executor("api.echo", slow)
    res = h.resolution_of(h.sid)
    box: dict[str, Any] = {}
    t = threading.Thread(
        target=lambda: box.update(r=h.execute("api.echo", {}, idempotency_key="k", resolution=res))
    )
    t.start()
    try:
        assert entered.wait(30)
        with pytest.raises(ConflictError):
            h.execute("api.echo", {}, idempotency_key="k", resolution=res)
    finally:
        release.set()
        t.join()
    assert box["r"].status == "success"
    assert h.execute("api.echo", {}, idempotency_key="k").execution_id == box["r"].execution_id


@pytest.mark.parametrize("key", ["x", "k" * 255, "ünïcødé key"])
def test_any_key_of_1_to_255_characters(h: Harness, calls: Calls, key: str) -> None:
    first = h.execute("api.echo", {}, idempotency_key=key)
    assert h.execute("api.echo", {}, idempotency_key=key).execution_id == first.execution_id


def test_a_key_over_255_characters_is_invalid(h: Harness) -> None:
    with pytest.raises(Exception) as info:
        h.execute("api.echo", {}, idempotency_key="k" * 256)
    assert getattr(info.value, "path", None) == "/execution/idempotency_key"
