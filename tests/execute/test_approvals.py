"""Approvals (CARP §5): what waits, what a grant covers (by default one
execution with exactly the parameters the human saw; or the action for the
resolution's life), rejection, the hashed decision events, expiry with the
resolution, and grants given back when an execution is stopped later."""

from __future__ import annotations

from typing import Any

import pytest
from cra.errors import ExpiredError, NotFoundError, ValidationError
from execute_helpers import Calls, Harness, code, one_refund_per_minute, ops_atlas, value_hash
from resolve_helpers import action, make_atlas, policy

REFUND_20 = {"order_id": "o-1", "amount": 20}
REFUND_900 = {"order_id": "o-1", "amount": 900}
DECISION_KEYS = {
    "action_id",
    "approval_id",
    "approver",
    "parameters_hash",
    "resolution_id",
    "scope",
}


def approval_id(h: Harness) -> str:
    aid = h.resolution_of(h.sid).decision.approval_id
    assert aid is not None
    return aid


def refund(h: Harness, params: dict[str, Any]) -> str:
    return h.execute("payment.refund", params).status


# -- what waits ------------------------------------------------------------------------


def test_a_gated_action_waits_and_is_listed(h: Harness) -> None:
    assert refund(h, REFUND_20) == "pending_approval"
    (pending,) = h.rt.pending_approvals(h.sid)
    assert pending["approval_id"] == approval_id(h)
    assert pending["session_id"] == h.sid
    assert pending["resolution_id"] == h.resolution_of(h.sid).resolution_id
    assert pending["action_id"] == "payment.refund"
    assert pending["parameters"] == REFUND_20
    assert pending["parameters_hash"] == value_hash(REFUND_20)
    assert pending["requested_at"] == "2027-01-15T08:00:00.000000Z"


def test_the_same_wait_is_listed_once(h: Harness) -> None:
    for _ in range(3):
        refund(h, REFUND_20)
    refund(h, REFUND_900)
    pending = h.rt.pending_approvals(h.sid)
    assert [p["parameters"] for p in pending] == [REFUND_20, REFUND_900]


def test_pending_approvals_oldest_first_by_session_or_all(h: Harness) -> None:
    other = h.session()
    h.resolve(other)
    refund(h, REFUND_20)
    h.clock.advance(1)
    h.execute("payment.refund", REFUND_900, sid=other)
    assert [p["session_id"] for p in h.rt.pending_approvals()] == [h.sid, other]
    assert [p["parameters"] for p in h.rt.pending_approvals(other)] == [REFUND_900]


def test_the_resolution_names_the_approval(h: Harness) -> None:
    res = h.resolution_of(h.sid)
    assert res.decision.approval_id is not None
    (gated,) = [a for a in res.allowed_actions if a.action_id == "payment.refund"]
    assert gated.requires_confirmation


def test_requires_confirmation_in_the_atlas_waits_too() -> None:
    atlas = make_atlas(
        "org.test.confirm",
        actions=[action("mail.send", requires_confirmation=True), action("mail.read")],
        policies=[policy("allow-mail", "allow", ["mail.*"])],
    )
    with Harness(atlas) as h:
        res = h.resolve()
        assert res.decision.approval_id is not None
        n = h.count()
        r = h.execute("mail.send", {"to": "a@b.c"})
        assert (r.status, code(r)) == ("pending_approval", "APPROVAL_REQUIRED")
        assert h.events(start=n)[-1].payload == {
            "action_id": "mail.send",
            "policy_id": "requires_confirmation",
            "result": "requires_approval",
        }
        assert h.execute("mail.read").status == "success"
        h.rt.approve(res.decision.approval_id, "carol")
        assert h.execute("mail.send", {"to": "a@b.c"}).status == "success"


# -- what a grant covers ----------------------------------------------------------------


def test_a_grant_covers_exactly_those_parameters_once(h: Harness) -> None:
    calls = Calls()
    h.rt.register_executor("payment.refund", calls)
    assert refund(h, REFUND_20) == "pending_approval"
    decision = h.rt.approve(approval_id(h), "alice")
    assert decision["parameters_hash"] == value_hash(REFUND_20)
    assert decision["scope"] == "once"
    # Approving "refund 20" did not approve "refund 900".
    assert refund(h, REFUND_900) == "pending_approval"
    assert refund(h, REFUND_20) == "success"
    assert calls.seen == [REFUND_20]
    # Once: the same refund again waits again.
    assert refund(h, REFUND_20) == "pending_approval"
    assert calls.count == 1


def test_a_granted_wait_leaves_the_list(h: Harness) -> None:
    refund(h, REFUND_20)
    refund(h, REFUND_900)
    h.rt.approve(approval_id(h), "alice", parameters_hash=value_hash(REFUND_20))
    assert refund(h, REFUND_20) == "success"
    assert [p["parameters"] for p in h.rt.pending_approvals(h.sid)] == [REFUND_900]


def test_several_waits_need_naming_which(h: Harness) -> None:
    refund(h, REFUND_20)
    refund(h, REFUND_900)
    with pytest.raises(ValidationError) as info:
        h.rt.approve(approval_id(h), "alice")
    assert info.value.code == "APPROVAL_AMBIGUOUS"
    d = h.rt.approve(
        approval_id(h),
        "alice",
        action_id="payment.refund",
        parameters_hash=value_hash(REFUND_900),
    )
    assert d["parameters_hash"] == value_hash(REFUND_900)
    assert refund(h, REFUND_20) == "pending_approval"
    assert refund(h, REFUND_900) == "success"


def test_nothing_waiting_needs_an_action_to_approve(h: Harness) -> None:
    with pytest.raises(ValidationError) as info:
        h.rt.approve(approval_id(h), "alice")
    assert info.value.code == "APPROVAL_NOT_PENDING"


def test_a_grant_ahead_of_the_request_with_action_and_hash(h: Harness) -> None:
    h.rt.approve(
        approval_id(h), "alice", action_id="payment.refund", parameters_hash=value_hash(REFUND_20)
    )
    assert refund(h, REFUND_900) == "pending_approval"
    assert refund(h, REFUND_20) == "success"
    assert refund(h, REFUND_20) == "pending_approval"


def test_a_grant_for_the_resolution_covers_the_action_until_it_expires(h: Harness) -> None:
    d = h.rt.approve(approval_id(h), "alice", action_id="payment.refund", scope="resolution")
    assert (d["scope"], d["action_id"], d["parameters_hash"]) == (
        "resolution",
        "payment.refund",
        None,
    )
    for amount in (1, 2, 900):
        assert refund(h, {"order_id": "o", "amount": amount}) == "success"
    h.clock.advance(3599)
    assert refund(h, REFUND_20) == "success"
    h.clock.advance(1)
    with pytest.raises(ExpiredError) as info:
        h.execute("payment.refund", REFUND_20)
    assert info.value.code == "RESOLUTION_EXPIRED"
    # A new resolution has a new approval that nobody granted.
    h.resolve()
    assert refund(h, REFUND_20) == "pending_approval"


def test_a_grant_for_the_resolution_from_what_waits(h: Harness) -> None:
    refund(h, REFUND_20)
    h.rt.approve(approval_id(h), "alice", scope="resolution")
    assert refund(h, REFUND_900) == "success"
    assert refund(h, REFUND_20) == "success"
    assert h.rt.pending_approvals(h.sid) == []


def test_a_grant_does_not_reach_another_resolution(h: Harness) -> None:
    old = h.resolution_of(h.sid)
    assert old.decision.approval_id is not None
    new = h.resolve()
    assert new.decision.approval_id != old.decision.approval_id
    h.rt.approve(old.decision.approval_id, "alice", action_id="payment.refund", scope="resolution")
    assert h.execute("payment.refund", REFUND_20, resolution=new).status == "pending_approval"
    assert h.execute("payment.refund", REFUND_20, resolution=old).status == "success"


def test_unknown_scope_is_invalid(h: Harness) -> None:
    with pytest.raises(ValidationError) as info:
        h.rt.approve(approval_id(h), "alice", action_id="payment.refund", scope="forever")
    assert info.value.path == "/scope"


# -- rejection --------------------------------------------------------------------------


def test_a_rejection_denies_the_gated_actions_from_then_on(h: Harness) -> None:
    refund(h, REFUND_20)
    d = h.rt.reject(approval_id(h), "bob", note="not today")
    assert (d["granted"], d["approver"], d["note"]) == (False, "bob", "not today")
    assert h.rt.pending_approvals(h.sid) == []
    for params in (REFUND_20, REFUND_900):
        r = h.execute("payment.refund", params)
        assert (r.status, code(r)) == ("denied", "APPROVAL_REJECTED")
        assert r.error is not None
        assert r.error.details == {"approval_id": approval_id(h), "approver": "bob"}
    # Actions that need no approval are not affected.
    assert h.execute("api.echo").status == "success"


def test_a_rejection_cannot_be_approved_afterwards(h: Harness) -> None:
    refund(h, REFUND_20)
    h.rt.reject(approval_id(h), "bob")
    with pytest.raises(ValidationError) as info:
        h.rt.approve(approval_id(h), "alice", action_id="payment.refund", scope="resolution")
    assert info.value.code == "APPROVAL_REJECTED"
    assert refund(h, REFUND_20) == "denied"


def test_a_rejected_execution_is_traced_as_denied(h: Harness) -> None:
    h.rt.reject(approval_id(h), "bob")
    n = h.count()
    refund(h, REFUND_20)
    denied = h.events(start=n)[-1]
    assert denied.event_type == "action.denied"
    assert denied.payload["policy_id"] == "refunds-need-a-human"


# -- decisions are trace events ---------------------------------------------------------


def test_a_grant_is_an_action_approved_event(h: Harness) -> None:
    refund(h, REFUND_20)
    n = h.count()
    h.rt.approve(approval_id(h), "alice", note="customer called")
    (event,) = h.events(start=n)
    assert event.event_type == "action.approved"
    assert event.payload == {
        "action_id": "payment.refund",
        "approval_id": approval_id(h),
        "approver": "alice",
        "note": "customer called",
        "parameters_hash": value_hash(REFUND_20),
        "resolution_id": h.resolution_of(h.sid).resolution_id,
        "scope": "once",
    }
    assert event.parent_span_id == h.events()[0].span_id
    assert h.rt.verify(h.sid).valid


def test_a_grant_without_a_note_has_no_note_key(h: Harness) -> None:
    refund(h, REFUND_20)
    h.rt.approve(approval_id(h), "alice")
    assert set(h.events()[-1].payload) == DECISION_KEYS


def test_a_grant_for_the_resolution_event(h: Harness) -> None:
    h.rt.approve(approval_id(h), "alice", action_id="payment.refund", scope="resolution")
    event = h.events()[-1]
    assert event.event_type == "action.approved"
    assert event.payload["scope"] == "resolution"
    assert event.payload["approver"] == "alice"
    assert set(event.payload) == DECISION_KEYS - {"parameters_hash"}


def test_a_rejection_is_an_action_denied_event(h: Harness) -> None:
    refund(h, REFUND_20)
    n = h.count()
    h.rt.reject(approval_id(h), "bob", note="too much")
    (event,) = h.events(start=n)
    assert event.event_type == "action.denied"
    assert event.payload == {
        "action_id": "payment.refund",
        "approval_id": approval_id(h),
        "approver": "bob",
        "note": "too much",
        "parameters_hash": value_hash(REFUND_20),
        "policy_id": "human_approval",
        "reason": "approval_rejected",
        "resolution_id": h.resolution_of(h.sid).resolution_id,
        "scope": "once",
    }


def test_decision_events_follow_the_clock(h: Harness) -> None:
    refund(h, REFUND_20)
    h.clock.advance(42.25)
    h.rt.approve(approval_id(h), "alice")
    assert h.events()[-1].timestamp == "2027-01-15T08:00:42.250000Z"


# -- expiry and unknown ids -------------------------------------------------------------


def test_approvals_expire_with_their_resolution(h: Harness) -> None:
    refund(h, REFUND_20)
    h.clock.advance(3600)
    assert h.rt.pending_approvals(h.sid) == []
    with pytest.raises(ExpiredError) as info:
        h.rt.approve(approval_id(h), "alice")
    assert (info.value.code, info.value.http_status) == ("APPROVAL_EXPIRED", 410)
    with pytest.raises(ExpiredError):
        h.rt.reject(approval_id(h), "bob")


def test_approval_with_a_short_ttl() -> None:
    with Harness(ops_atlas(default_ttl_seconds=60)) as h:
        h.resolve()
        refund(h, REFUND_20)
        h.clock.advance(59)
        h.rt.approve(approval_id(h), "alice")
        h.clock.advance(1)
        with pytest.raises(ExpiredError):
            h.execute("payment.refund", REFUND_20)


def test_unknown_approval_id(h: Harness) -> None:
    unknown = "0193a0b0-0000-7000-8000-0000000004ff"
    for call in (h.rt.approve, h.rt.reject):
        with pytest.raises(NotFoundError) as info:
            call(unknown, "alice")
        assert (info.value.code, info.value.http_status) == ("APPROVAL_NOT_FOUND", 404)


def test_malformed_approval_id(h: Harness) -> None:
    with pytest.raises(ValidationError) as info:
        h.rt.approve("not-a-uuid", "alice")
    assert info.value.path == "/approval_id"


def test_a_resolution_without_gated_actions_has_no_approval() -> None:
    atlas = make_atlas(actions=[action("a.read")], policies=[policy("allow", "allow")])
    with Harness(atlas) as h:
        assert h.resolve().decision.approval_id is None


# -- a once-grant is given back when the execution is stopped later ---------------------


def test_a_once_grant_stopped_by_a_rate_limit_is_given_back() -> None:
    one_refund = one_refund_per_minute()
    with Harness(ops_atlas(extra_policies=[one_refund])) as h:
        h.resolve()
        h.rt.approve(
            approval_id(h),
            "alice",
            action_id="payment.refund",
            parameters_hash=value_hash(REFUND_900),
        )
        assert refund(h, REFUND_900) == "success"
        refund(h, REFUND_20)
        h.rt.approve(approval_id(h), "alice")
        assert code(h.execute("payment.refund", REFUND_20)) == "RATE_LIMIT_EXCEEDED"
        h.clock.advance(60)
        assert refund(h, REFUND_20) == "success"
        assert refund(h, REFUND_20) == "pending_approval"


def test_a_grant_stopped_by_invalid_parameters_is_given_back(h: Harness) -> None:
    bad = {"order_id": "o-1", "amount": -5}
    assert refund(h, bad) == "pending_approval"
    h.rt.approve(approval_id(h), "alice")
    first = h.execute("payment.refund", bad)
    assert (first.status, code(first)) == ("error", "INVALID_PARAMETERS")
    # The grant was given back: the same request is checked again, not waiting again.
    second = h.execute("payment.refund", bad)
    assert code(second) == "INVALID_PARAMETERS"
    assert h.rt.pending_approvals(h.sid) == []


def test_a_grant_stopped_by_a_missing_executor_is_given_back() -> None:
    with Harness(executors=False) as h:
        h.resolve()
        refund(h, REFUND_20)
        h.rt.approve(approval_id(h), "alice")
        assert code(h.execute("payment.refund", REFUND_20)) == "NO_EXECUTOR"
        h.rt.register_executor("payment.refund", lambda **p: "refunded")
        assert h.execute("payment.refund", REFUND_20).result == "refunded"
        assert refund(h, REFUND_20) == "pending_approval"


def test_a_failed_execution_uses_the_grant(h: Harness) -> None:
    def boom(**_: Any) -> None:
        raise RuntimeError("bank offline")

    h.rt.register_executor("payment.refund", boom)
    refund(h, REFUND_20)
    h.rt.approve(approval_id(h), "alice")
    assert code(h.execute("payment.refund", REFUND_20)) == "EXECUTION_FAILED"
    assert refund(h, REFUND_20) == "pending_approval"
