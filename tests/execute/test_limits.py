"""Rate limits and budgets (CARP §2, §4, §5): sliding windows over
executions on a manual clock, the session / agent / global scopes, budget
costs, what counts (a success or failure) and what does not (a denial,
invalid parameters, a missing executor), exactness under 8 threads, and how
an exhausted limit shows in a resolution."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest
from execute_helpers import Harness, code, one_refund_per_minute, ops_atlas
from resolve_helpers import decided_by, policy


def call(h: Harness, sid: str | None = None, path: str = "/a") -> str:
    r = h.execute("api.call", {"path": path}, sid=sid)
    return r.status if r.status != "denied" else str(code(r))


# -- the sliding window -----------------------------------------------------------------


def test_window_admits_max_calls_then_denies(h: Harness) -> None:
    assert [call(h) for _ in range(3)] == ["success", "success", "RATE_LIMIT_EXCEEDED"]


def test_window_slides_with_each_execution(h: Harness) -> None:
    assert call(h) == "success"  # t = 0
    h.clock.advance(40)
    assert call(h) == "success"  # t = 40
    h.clock.advance(19.999999)
    assert call(h) == "RATE_LIMIT_EXCEEDED"  # the call at t = 0 is still inside
    h.clock.advance(0.000001)
    assert call(h) == "success"  # t = 60: the call at t = 0 has left the window
    assert call(h) == "RATE_LIMIT_EXCEEDED"
    h.clock.advance(40)
    assert call(h) == "success"  # t = 100: the call at t = 40 has left


def test_retry_after_is_when_the_oldest_execution_leaves(h: Harness) -> None:
    call(h)
    h.clock.advance(12.5)
    call(h)
    h.clock.advance(7.25)
    r = h.execute("api.call", {"path": "/a"})
    assert r.retry_after == pytest.approx(40.25)
    h.clock.advance(40.25)
    assert call(h) == "success"


def test_fractional_window() -> None:
    with Harness(ops_atlas(rate=(1, 0.5))) as h:
        h.resolve()
        assert call(h) == "success"
        r = h.execute("api.call", {"path": "/a"})
        assert r.retry_after == 0.5
        h.clock.advance(0.5)
        assert call(h) == "success"


# -- scopes -----------------------------------------------------------------------------


def test_session_scope_counts_each_session_alone(h: Harness) -> None:
    other = h.session()
    h.resolve(other)
    assert [call(h) for _ in range(3)] == ["success", "success", "RATE_LIMIT_EXCEEDED"]
    assert [call(h, other) for _ in range(2)] == ["success", "success"]


def test_agent_scope_is_shared_by_the_sessions_of_one_agent() -> None:
    with Harness(ops_atlas(rate_scope="agent")) as h:
        same_agent = h.session()
        other_agent = h.session("agent-2")
        for sid in (h.sid, same_agent, other_agent):
            h.resolve(sid)
        assert call(h) == "success"
        assert call(h, same_agent) == "success"
        assert call(h) == "RATE_LIMIT_EXCEEDED"
        assert call(h, same_agent) == "RATE_LIMIT_EXCEEDED"
        assert [call(h, other_agent) for _ in range(3)] == [
            "success",
            "success",
            "RATE_LIMIT_EXCEEDED",
        ]


def test_global_scope_is_shared_by_every_agent() -> None:
    with Harness(ops_atlas(rate_scope="global")) as h:
        a2 = h.session("agent-2")
        a3 = h.session("agent-3")
        for sid in (h.sid, a2, a3):
            h.resolve(sid)
        assert call(h) == "success"
        assert call(h, a2) == "success"
        assert call(h, a3) == "RATE_LIMIT_EXCEEDED"
        assert call(h) == "RATE_LIMIT_EXCEEDED"


def test_agent_scope_budget() -> None:
    with Harness(ops_atlas(budget_scope="agent")) as h:
        same_agent = h.session()
        h.resolve(same_agent)
        assert h.execute("credit.use").status == "success"
        assert h.execute("credit.use", sid=same_agent).status == "success"
        assert code(h.execute("credit.use", sid=same_agent)) == "BUDGET_EXCEEDED"


def test_global_scope_budget() -> None:
    with Harness(ops_atlas(budget_scope="global")) as h:
        other = h.session("agent-2")
        h.resolve(other)
        assert h.execute("credit.use").status == "success"
        assert h.execute("credit.use", sid=other).status == "success"
        assert code(h.execute("credit.use")) == "BUDGET_EXCEEDED"


def test_one_rate_limit_covers_every_action_it_names() -> None:
    shared = policy(
        "api-shared",
        "rate_limit",
        ["api.*"],
        parameters={"max_calls": 2, "window_seconds": 60},
    )
    with Harness(ops_atlas(extra_policies=[shared])) as h:
        h.resolve()
        assert h.execute("api.echo").status == "success"
        assert call(h) == "success"
        assert code(h.execute("api.echo")) == "RATE_LIMIT_EXCEEDED"
        r = h.execute("api.call", {"path": "/a"})
        assert code(r) == "RATE_LIMIT_EXCEEDED"
        assert r.error is not None and r.error.details["policy_id"] == "api-shared"


# -- budgets ----------------------------------------------------------------------------


def test_budget_costs_per_pattern_and_default_cost_one() -> None:
    with Harness(ops_atlas(budget=7)) as h:
        h.resolve()
        assert h.execute("credit.bulk").status == "success"  # 5 of 7
        assert h.execute("credit.use").status == "success"  # 6 of 7
        r = h.execute("credit.bulk")
        assert code(r) == "BUDGET_EXCEEDED"
        assert r.error is not None
        assert r.error.details == {"spent": 6, "limit": 7, "cost": 5, "policy_id": "credits"}
        assert h.execute("credit.use").status == "success"  # 7 of 7
        assert code(h.execute("credit.use")) == "BUDGET_EXCEEDED"


def test_budget_with_fractional_costs() -> None:
    halves = policy(
        "halves",
        "budget",
        ["api.echo"],
        parameters={"limit": 1.5, "costs": {"api.*": 0.5}},
    )
    with Harness(ops_atlas(extra_policies=[halves])) as h:
        h.resolve()
        assert [h.execute("api.echo").status for _ in range(4)] == [
            "success",
            "success",
            "success",
            "denied",
        ]


def test_budget_does_not_refill_with_time(h: Harness) -> None:
    h.execute("credit.use")
    h.execute("credit.use")
    h.clock.advance(3000)
    assert code(h.execute("credit.use")) == "BUDGET_EXCEEDED"


def test_a_cost_larger_than_the_budget_is_denied_at_resolve(h: Harness) -> None:
    res = h.resolution_of(h.sid)
    assert decided_by(res)["credit.bulk"] == "credits"
    # Execute re-checks limits now, and answers with the limit's own code.
    assert code(h.execute("credit.bulk")) == "BUDGET_EXCEEDED"


# -- what counts ------------------------------------------------------------------------


def test_a_failure_counts() -> None:
    with Harness() as h:
        h.resolve()

        def down(**_: Any) -> None:
            raise ConnectionError("down")

        h.rt.register_executor("api.call", down)
        assert code(h.execute("api.call", {"path": "/a"})) == "EXECUTION_FAILED"
        assert code(h.execute("api.call", {"path": "/a"})) == "EXECUTION_FAILED"
        assert code(h.execute("api.call", {"path": "/a"})) == "RATE_LIMIT_EXCEEDED"


def test_an_invalid_result_counts(h: Harness) -> None:
    h.rt.register_executor("api.call", lambda **p: {1, 2})
    assert code(h.execute("api.call", {"path": "/a"})) == "INVALID_RESULT"
    h.rt.register_executor("api.call", lambda **p: None)
    assert call(h) == "success"
    assert call(h) == "RATE_LIMIT_EXCEEDED"


def test_a_denied_attempt_does_not_count(h: Harness) -> None:
    assert call(h) == "success"  # t = 0
    h.clock.advance(30)
    assert call(h) == "success"  # t = 30
    h.clock.advance(10)
    assert call(h) == "RATE_LIMIT_EXCEEDED"  # t = 40, not counted
    h.clock.advance(20)
    assert call(h) == "success"  # t = 60: only t = 30 is inside the window


def test_invalid_parameters_do_not_count(h: Harness) -> None:
    for _ in range(5):
        assert code(h.execute("api.call", {"path": 1})) == "INVALID_PARAMETERS"
    assert [call(h) for _ in range(3)] == ["success", "success", "RATE_LIMIT_EXCEEDED"]


def test_invalid_parameters_do_not_spend_budget(h: Harness) -> None:
    for _ in range(3):
        assert code(h.execute("credit.transfer", {"to": 1})) == "INVALID_PARAMETERS"
    assert h.execute("credit.transfer", {"to": "x"}).status == "success"
    assert h.execute("credit.use").status == "success"
    assert code(h.execute("credit.use")) == "BUDGET_EXCEEDED"


def test_no_executor_does_not_count() -> None:
    with Harness(executors=False) as h:
        h.resolve()
        for _ in range(3):
            assert code(h.execute("api.call", {"path": "/a"})) == "NO_EXECUTOR"
            assert code(h.execute("credit.use")) == "NO_EXECUTOR"
        h.rt.register_executor("api.call", lambda **p: "ok")
        h.rt.register_executor("credit.use", lambda **p: "ok")
        assert [call(h) for _ in range(3)] == ["success", "success", "RATE_LIMIT_EXCEEDED"]
        assert [h.execute("credit.use").status for _ in range(3)] == [
            "success",
            "success",
            "denied",
        ]


def test_a_pending_approval_does_not_count() -> None:
    one_refund = one_refund_per_minute()
    with Harness(ops_atlas(extra_policies=[one_refund])) as h:
        res = h.resolve()
        params = {"order_id": "o", "amount": 1}
        for _ in range(3):
            assert h.execute("payment.refund", params).status == "pending_approval"
        assert res.decision.approval_id is not None
        h.rt.approve(res.decision.approval_id, "alice")
        assert h.execute("payment.refund", params).status == "success"


def test_validate_does_not_count(h: Harness) -> None:
    for _ in range(3):
        req = h.execute_request("api.call", {"path": "/a"})
        req["operation"] = "validate"
        assert h.rt.validate(req)["valid"]
    assert [call(h) for _ in range(3)] == ["success", "success", "RATE_LIMIT_EXCEEDED"]


def test_resolve_does_not_count(h: Harness) -> None:
    for _ in range(5):
        h.resolve()
    assert [call(h) for _ in range(3)] == ["success", "success", "RATE_LIMIT_EXCEEDED"]


# -- many threads, one limit ------------------------------------------------------------

THREADS = 8
ATTEMPTS = 40


def hammer(h: Harness, action_id: str, params: dict[str, Any]) -> Counter[str]:
    res = h.resolution_of(h.sid)
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            start.wait()
            for _ in range(ATTEMPTS):
                r = h.execute(action_id, params, resolution=res)
                with lock:
                    outcomes[r.status if r.ok else str(code(r))] += 1
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    return outcomes


def test_eight_threads_never_exceed_a_rate_limit() -> None:
    with Harness(ops_atlas(rate=(50, 3600))) as h:
        h.resolve()
        outcomes = hammer(h, "api.call", {"path": "/x"})
        assert outcomes == {"success": 50, "RATE_LIMIT_EXCEEDED": THREADS * ATTEMPTS - 50}
        executed = h.types().count("action.executed")
        assert executed == 50
        assert h.rt.verify(h.sid).valid


def test_eight_threads_never_exceed_a_budget() -> None:
    with Harness(ops_atlas(budget=50)) as h:
        h.resolve()
        outcomes = hammer(h, "credit.use", {})
        assert outcomes == {"success": 50, "BUDGET_EXCEEDED": THREADS * ATTEMPTS - 50}
        assert h.types().count("action.executed") == 50


def test_eight_threads_over_sessions_of_one_agent_share_an_agent_limit() -> None:
    with Harness(ops_atlas(rate=(50, 3600), rate_scope="agent")) as h:
        sessions = [h.session() for _ in range(THREADS)]
        resolutions = {sid: h.resolve(sid) for sid in sessions}
        outcomes: Counter[str] = Counter()
        lock = threading.Lock()

        def worker(sid: str) -> None:
            for _ in range(ATTEMPTS):
                r = h.execute("api.call", {"path": "/x"}, sid=sid, resolution=resolutions[sid])
                with lock:
                    outcomes[r.status] += 1

        threads = [threading.Thread(target=worker, args=(sid,)) for sid in sessions]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert outcomes == {"success": 50, "denied": THREADS * ATTEMPTS - 50}


# -- exhausted limits in a resolution ---------------------------------------------------


def test_resolve_shows_a_full_window_as_denied(h: Harness) -> None:
    call(h)
    call(h)
    n = h.count()
    res = h.resolve()
    (denied,) = [d for d in res.denied_actions if d.action_id == "api.call"]
    assert (denied.reason, denied.policy_id) == ("rate_limit_exceeded", "api-rate")
    assert "api.call" not in res.allowed_action_ids
    evaluated = [
        e.payload
        for e in h.events(start=n)
        if e.event_type == "policy.evaluated" and e.payload["action_id"] == "api.call"
    ]
    assert evaluated == [
        {
            "action_id": "api.call",
            "policy_id": "api-rate",
            "reason": "rate_limit_exceeded",
            "result": "deny",
        }
    ]
    h.clock.advance(60)
    assert "api.call" in h.resolve().allowed_action_ids


def test_resolve_shows_a_spent_budget_as_denied(h: Harness) -> None:
    h.execute("credit.use")
    h.execute("credit.use")
    res = h.resolve()
    reasons = {d.action_id: d.reason for d in res.denied_actions}
    assert reasons["credit.use"] == "budget_exceeded"
    assert reasons["credit.transfer"] == "budget_exceeded"
    assert decided_by(res)["credit.use"] == "credits"


def test_a_limit_with_room_is_a_constraint(h: Harness) -> None:
    res = h.resolution_of(h.sid)
    (api,) = [a for a in res.allowed_actions if a.action_id == "api.call"]
    assert api.rate_limit == {"max_calls": 2, "window_seconds": 60}
    kinds = {c.constraint_id: c.type for c in res.constraints}
    assert kinds["api-rate"] == "rate_limit"
    assert kinds["credits"] == "budget"


def test_a_resolution_made_with_room_is_checked_at_execution(h: Harness) -> None:
    res = h.resolution_of(h.sid)
    assert "api.call" in res.allowed_action_ids
    call(h)
    call(h)
    assert code(h.execute("api.call", {"path": "/a"}, resolution=res)) == "RATE_LIMIT_EXCEEDED"


def test_a_limit_denial_in_the_resolution_is_checked_again_at_execution(h: Harness) -> None:
    call(h)
    h.clock.advance(10)
    call(h)
    full = h.resolve()
    assert "api.call" in full.denied_action_ids
    r = h.execute("api.call", {"path": "/a"}, resolution=full)
    assert (r.status, code(r), r.retry_after) == ("denied", "RATE_LIMIT_EXCEEDED", 50.0)
    h.clock.advance(50)
    assert h.execute("api.call", {"path": "/a"}, resolution=full).status == "success"
