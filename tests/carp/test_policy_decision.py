"""The outcome of CARP resolve (§4.5): requires_confirmation and approval ids,
the decision type and its reason, and which atlases' policies govern the
candidate actions.
"""

from __future__ import annotations

import cra
from resolve_helpers import (
    ACT,
    GUARD,
    PAYMENTS,
    RESOURCES,
    action,
    decided_by,
    make_atlas,
    new_session,
    outcome,
    policy,
    request,
    resolve_one,
)

# -- confirmation and approval ids ------------------------------------------------------


def test_requires_confirmation_for_needs_approval_actions() -> None:
    res = resolve_one(
        [policy("ask", "require_approval", ["doc.write"]), policy("ok", "allow")],
        [action("doc.read"), action("doc.write")],
    )
    assert {a.action_id: a.requires_confirmation for a in res.allowed_actions} == {
        "doc.read": False,
        "doc.write": True,
    }
    assert res.decision.type == "partial"
    assert res.decision.approval_id is not None


def test_requires_confirmation_when_the_action_says_so() -> None:
    res = resolve_one(
        [policy("ok", "allow")],
        [action("doc.read"), action("doc.send", requires_confirmation=True)],
    )
    assert {a.action_id: a.requires_confirmation for a in res.allowed_actions} == {
        "doc.read": False,
        "doc.send": True,
    }
    # Allowed without a policy gate, but a confirmation is asked for: an approval id.
    assert res.decision.type == "allow"
    assert res.decision.approval_id is not None


def test_no_approval_id_when_nothing_needs_confirmation() -> None:
    res = resolve_one([policy("ok", "allow")], [action("doc.read"), action("doc.write")])
    assert res.decision.approval_id is None


def test_denied_action_asking_for_confirmation_gives_no_approval_id() -> None:
    res = resolve_one(
        [policy("ok", "allow", ["doc.read"])],
        [action("doc.read"), action("doc.send", requires_confirmation=True)],
    )
    assert res.decision.type == "partial"
    assert res.decision.approval_id is None


def test_approval_ids_are_fresh_uuid7(rt: cra.Runtime) -> None:
    rt.load_atlas(PAYMENTS)
    sid = new_session(rt)
    ids = {rt.resolve(request(rt, sid, risk_tier="high")).decision.approval_id for _ in range(5)}
    assert len(ids) == 5
    for i in ids:
        assert i is not None and i[14] == "7" and i == i.lower()


# -- decision type and reason ----------------------------------------------------------


def test_decision_allow() -> None:
    res = resolve_one([policy("ok", "allow")], [action("doc.read"), action("doc.write")])
    assert (res.decision.type, res.decision.reason) == ("allow", None)


def test_decision_partial_when_something_is_denied() -> None:
    res = resolve_one(
        [policy("ok", "allow", ["doc.read"])], [action("doc.read"), action("doc.write")]
    )
    assert (res.decision.type, res.decision.reason) == (
        "partial",
        "Some actions are denied by policy",
    )


def test_decision_partial_when_something_needs_approval() -> None:
    res = resolve_one(
        [policy("ask", "require_approval", ["doc.write"]), policy("ok", "allow")],
        [action("doc.read"), action("doc.write")],
    )
    assert res.denied_actions == []
    assert (res.decision.type, res.decision.reason) == (
        "partial",
        "Some actions are denied by policy",
    )


def test_decision_requires_approval() -> None:
    res = resolve_one(
        [policy("ask", "require_approval", ["doc.write"]), policy("no", "deny", ["doc.read"])],
        [action("doc.read"), action("doc.write")],
    )
    assert (res.decision.type, res.decision.reason) == (
        "requires_approval",
        "Human approval required",
    )
    assert res.decision.approval_id is not None


def test_decision_deny_reason_is_the_first_denial() -> None:
    res = resolve_one(
        [policy("no-write", "deny", ["doc.write"], reason="writes are off")],
        [action("doc.write"), action("doc.read")],
    )
    assert (res.decision.type, res.decision.reason) == ("deny", "writes are off")
    res = resolve_one(
        [policy("no-write", "deny", ["doc.write"], reason="writes are off")],
        [action("doc.read"), action("doc.write")],
    )
    assert (res.decision.type, res.decision.reason) == ("deny", "No policy allows this action")
    assert res.decision.approval_id is None


def test_decision_deny_when_no_actions_match() -> None:
    res = resolve_one([policy("ok", "allow")], [])
    assert (res.decision.type, res.decision.reason) == ("deny", "No actions matched the request")
    assert res.allowed_actions == [] and res.denied_actions == []


def test_default_reason_names_the_policy() -> None:
    res = resolve_one([policy("quiet", "deny")], ACT)
    assert outcome(res, "doc.read") == ("deny", "quiet", "Denied by policy quiet")


def test_reason_from_parameters_is_accepted() -> None:
    res = resolve_one([policy("legacy", "deny", parameters={"reason": "said in parameters"})], ACT)
    assert outcome(res, "doc.read") == ("deny", "legacy", "said in parameters")


def test_top_level_reason_wins_over_parameters_reason() -> None:
    """Code's choice when both are given."""
    res = resolve_one([policy("both", "deny", reason="top", parameters={"reason": "inner"})], ACT)
    assert outcome(res, "doc.read")[2] == "top"


# -- candidate atlases ---------------------------------------------------------------


def test_policies_of_non_candidate_atlases_do_not_apply(rt: cra.Runtime) -> None:
    rt.load_atlas(RESOURCES)
    rt.load_atlas(GUARD)
    sid = new_session(rt)
    everything = rt.resolve(request(rt, sid))
    assert decided_by(everything)["resource.delete"] == "no-deletes-anywhere"
    only = rt.resolve(request(rt, sid, atlas_ids=["org.cra.resources"]))
    assert decided_by(only)["resource.delete"] == "never-delete"


def test_allow_of_a_non_candidate_atlas_does_not_allow(rt: cra.Runtime) -> None:
    rt.load_atlas(make_atlas("org.test.opener", policies=[policy("allow-all", "allow")]))
    rt.load_atlas(make_atlas("org.test.closed", actions=[action("door.open")]))
    sid = new_session(rt)
    assert rt.resolve(request(rt, sid)).allowed_action_ids == ["door.open"]
    res = rt.resolve(request(rt, sid, atlas_ids=["org.test.closed"]))
    assert decided_by(res) == {"door.open": "default-deny"}
    both = rt.resolve(request(rt, sid, atlas_ids=["org.test.closed", "org.test.opener"]))
    assert both.allowed_action_ids == ["door.open"]


def test_policies_of_one_atlas_govern_actions_of_another(rt: cra.Runtime) -> None:
    rt.load_atlas(GUARD)
    rt.load_atlas(
        make_atlas(
            "org.test.files",
            actions=[action("file.delete"), action("file.read")],
            policies=[policy("ok", "allow")],
        )
    )
    sid = new_session(rt)
    res = rt.resolve(request(rt, sid))
    assert decided_by(res) == {"file.delete": "no-deletes-anywhere"}
    assert res.denied_actions[0].reason == "Guard rails forbid deletion"


def test_payments_conformance_atlas(rt: cra.Runtime) -> None:
    rt.load_atlas(PAYMENTS)
    sid = new_session(rt)
    high = rt.resolve(request(rt, sid, "Refund an order", risk_tier="high"))
    assert high.decision.type == "requires_approval"
    assert [a.requires_confirmation for a in high.allowed_actions] == [True, True]
    assert [(c.constraint_id, c.type) for c in high.constraints] == [
        ("human-for-risky", "require_approval")
    ]
    low = rt.resolve(request(rt, sid, "Check an order"))
    assert low.decision.type == "allow" and low.decision.approval_id is None
    assert low.constraints == []
