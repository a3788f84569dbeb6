"""Nothing accepted and ignored (issue 16, atlas.md §8): every key the loader
does not read is a fault at its JSON pointer, with a "did you mean" for a
near miss; the upstream CRA fields cra does not implement are refused with
what to write instead; a policy pattern that matches no action is
`POLICY_MATCHES_NOTHING`. One test per mistake.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import cra
import pytest
from cra.errors import ValidationError
from resolve_helpers import action, make_atlas, policy

Manifest = dict[str, Any]


def base() -> Manifest:
    """A valid atlas that uses every place a key can be misspelt."""
    return make_atlas(
        "org.test.strict",
        description="Strict keys",
        actions=[action("email.send", risk_tier="medium"), action("email.read")],
        policies=[
            policy("allow-read", "allow", ["email.read"]),
            policy(
                "limit-send",
                "rate_limit",
                ["email.send"],
                parameters={"max_calls": 3, "window_seconds": 60},
                conditions={"risk_tiers": ["medium"], "agent_ids": ["agent-*"]},
            ),
            policy(
                "spend", "budget", ["email.*"], parameters={"limit": 10, "costs": {"email.send": 2}}
            ),
            policy("no-send", "deny", ["email.send"], reason="not today"),
        ],
        capabilities=[{"capability_id": "mail", "name": "Mail", "actions": ["email.send"]}],
        context_packs=[
            {"pack_id": "tone", "content": "Be brief.", "conditions": {"keywords": ["email"]}},
        ],
    )


def load_error(m: Manifest) -> ValidationError:
    with cra.Runtime() as rt, pytest.raises(ValidationError) as info:
        rt.load_atlas(m)
    return info.value


def only_fault(m: Manifest, code: str = "ATLAS_INVALID") -> dict[str, str]:
    err = load_error(m)
    assert err.code == code, err
    assert len(err.errors) == 1, err.errors
    assert err.path == err.errors[0]["path"]
    return err.errors[0]


def test_the_base_atlas_loads() -> None:
    with cra.Runtime() as rt:
        rt.load_atlas(base())


def _pol(i: int) -> Callable[[Manifest], dict[str, Any]]:
    return lambda m: m["policies"][i]


# (where the key goes, key, value, expected path, words the message must hold)
CASES: dict[str, tuple[Callable[[Manifest], dict[str, Any]], str, Any, str, str]] = {
    "manifest near miss": (
        lambda m: m,
        "descripton",
        "x",
        "/descripton",
        'did you mean "description"',
    ),
    "manifest annotation": (lambda m: m, "x-owner", "me", "/x-owner", "cra does not read it"),
    "manifest context_blocks": (
        lambda m: m,
        "context_blocks",
        [{"content": "hi"}],
        "/context_blocks",
        "does not support inline",
    ),
    "action near miss": (
        lambda m: m["actions"][0],
        "risk_teir",
        "high",
        "/actions/0/risk_teir",
        'did you mean "risk_tier"',
    ),
    "action rate_limit": (
        lambda m: m["actions"][0],
        "rate_limit",
        {"max_calls": 1, "window_seconds": 60},
        "/actions/0/rate_limit",
        "use a rate_limit policy",
    ),
    "action context_blocks": (
        lambda m: m["actions"][1],
        "context_blocks",
        [],
        "/actions/1/context_blocks",
        "context_packs",
    ),
    "action trace near miss": (
        lambda m: m["actions"][1],
        "trace_params",
        "full",
        "/actions/1/trace_params",
        'did you mean "trace_parameters"',
    ),
    "capability near miss": (
        lambda m: m["capabilities"][0],
        "action",
        ["email.read"],
        "/capabilities/0/action",
        'did you mean "actions"',
    ),
    "pack near miss": (
        lambda m: m["context_packs"][0],
        "priorty",
        5,
        "/context_packs/0/priorty",
        'did you mean "priority"',
    ),
    "pack max_tokens": (
        lambda m: m["context_packs"][0],
        "max_tokens",
        500,
        "/context_packs/0/max_tokens",
        "does not support",
    ),
    "pack condition near miss": (
        lambda m: m["context_packs"][0]["conditions"],
        "keyword",
        ["x"],
        "/context_packs/0/conditions/keyword",
        'did you mean "keywords"',
    ),
    "policy near miss": (
        _pol(0),
        "actoins",
        ["email.read"],
        "/policies/0/actoins",
        'did you mean "actions"',
    ),
    "rate_limit scope at the top": (
        _pol(1),
        "scope",
        "agent",
        "/policies/1/scope",
        'belongs in "parameters"',
    ),
    "deny scope": (_pol(3), "scope", "agent", "/policies/3/scope", 'does not support "scope"'),
    "allow reason": (
        _pol(0),
        "reason",
        "why",
        "/policies/0/reason",
        "read only from a deny policy",
    ),
    "policy condition capabilities": (
        lambda m: m["policies"][1]["conditions"],
        "capabilities",
        ["mail"],
        "/policies/1/conditions/capabilities",
        '"actions" patterns',
    ),
    "policy condition time_window": (
        lambda m: m["policies"][1]["conditions"],
        "time_window",
        {"start": "09:00", "end": "17:00"},
        "/policies/1/conditions/time_window",
        'does not support a "time_window"',
    ),
    "policy condition context_matches": (
        lambda m: m["policies"][1]["conditions"],
        "context_matches",
        {"goal": "x"},
        "/policies/1/conditions/context_matches",
        'does not support a "context_matches"',
    ),
    "policy condition near miss": (
        lambda m: m["policies"][1]["conditions"],
        "agent_id",
        ["a"],
        "/policies/1/conditions/agent_id",
        'did you mean "agent_ids"',
    ),
    "rate_limit parameter near miss": (
        lambda m: m["policies"][1]["parameters"],
        "max_call",
        3,
        "/policies/1/parameters/max_call",
        'did you mean "max_calls"',
    ),
    "budget parameter near miss": (
        lambda m: m["policies"][2]["parameters"],
        "limits",
        3,
        "/policies/2/parameters/limits",
        'did you mean "limit"',
    ),
    "deny parameter scope": (
        lambda m: m["policies"][3].setdefault("parameters", {}),
        "scope",
        "global",
        "/policies/3/parameters/scope",
        'does not support "scope" on a deny policy',
    ),
    "allow parameters": (
        lambda m: m["policies"][0].setdefault("parameters", {}),
        "max_calls",
        1,
        "/policies/0/parameters/max_calls",
        "takes no parameters",
    ),
    "key with slash and tilde": (
        lambda m: m["actions"][0],
        "a/b~c",
        1,
        "/actions/0/a~1b~0c",
        "unknown key",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_key_the_loader_does_not_read_is_refused(name: str) -> None:
    where, key, value, path, words = CASES[name]
    m = base()
    where(m)[key] = copy.deepcopy(value)
    fault = only_fault(m)
    assert fault["path"] == path
    assert words in fault["message"], fault["message"]


def test_a_capability_naming_an_unknown_action_is_refused_with_the_closest_id() -> None:
    m = base()
    m["capabilities"][0]["actions"] = ["email.sned"]
    fault = only_fault(m)
    assert fault["path"] == "/capabilities/0/actions/0"
    assert 'did you mean "email.send"' in fault["message"]


def test_a_misspelt_policy_pattern_matches_nothing() -> None:
    m = base()
    m["policies"].append(policy("confirm", "require_approval", ["email.sned"]))
    fault = only_fault(m, "POLICY_MATCHES_NOTHING")
    assert fault["path"] == "/policies/4/actions/0"
    assert 'did you mean "email.send"' in fault["message"]


def test_a_far_pattern_names_the_closest_ids() -> None:
    m = base()
    m["policies"].append(policy("other", "deny", ["billing.refund.*"]))
    fault = only_fault(m, "POLICY_MATCHES_NOTHING")
    assert fault["path"] == "/policies/4/actions/0"
    assert "closest action ids" in fault["message"] and "email." in fault["message"]


def test_a_budget_cost_that_matches_nothing_is_refused() -> None:
    m = base()
    m["policies"][2]["parameters"]["costs"]["emial.send"] = 5
    fault = only_fault(m, "POLICY_MATCHES_NOTHING")
    assert fault["path"] == "/policies/2/parameters/costs/emial.send"


def test_a_pattern_may_match_an_action_of_a_dependency_only() -> None:
    core = make_atlas("org.test.core", actions=[action("ledger.post")])
    guard = make_atlas(
        "org.test.guard",
        policies=[policy("no-post", "deny", ["ledger.*"])],
        dependencies={"org.test.core": "^1.0"},
    )
    with cra.Runtime() as rt:
        rt.load_atlas(core)
        rt.load_atlas(guard)
        assert {a.atlas_id for a in rt.atlases()} == {"org.test.core", "org.test.guard"}


def test_a_pattern_matching_only_an_atlas_not_depended_on_is_refused() -> None:
    core = make_atlas("org.test.core", actions=[action("ledger.post")])
    guard = make_atlas("org.test.guard", policies=[policy("no-post", "deny", ["ledger.*"])])
    with cra.Runtime() as rt:
        rt.load_atlas(core)
        with pytest.raises(ValidationError) as info:
            rt.load_atlas(guard)
    assert info.value.code == "POLICY_MATCHES_NOTHING"
    assert info.value.path == "/policies/0/actions/0"
    assert "dependencies" in info.value.errors[0]["message"]


def test_other_faults_and_unmatched_patterns_are_reported_together() -> None:
    m = base()
    m["policies"].append(policy("confirm", "require_approval", ["email.sned"]))
    m["licence"] = "MIT"
    err = load_error(m)
    assert err.code == "ATLAS_INVALID"
    paths = {f["path"] for f in err.errors}
    assert paths == {"/licence", "/policies/4/actions/0"}
    assert any('did you mean "license"' in f["message"] for f in err.errors)


def test_informational_keys_are_kept_in_the_manifest() -> None:
    m = base()
    m.update(authors=["A"], license="MIT", domains=["mail"])
    with cra.Runtime() as rt:
        rt.load_atlas(m)
        kept = rt.atlas_manifest("org.test.strict")
    assert kept["authors"] == ["A"] and kept["license"] == "MIT" and kept["domains"] == ["mail"]


def test_a_pack_priority_still_defaults_to_zero() -> None:
    m = base()
    m["context_packs"].append({"pack_id": "first", "content": "First.", "priority": 1})
    with cra.Runtime() as rt:
        rt.load_atlas(m)
        sid = rt.create_session("agent-1", "Work")
        res = rt.resolve(cra.CARPRequest.resolve(sid, "agent-1", "write an email"))
    assert [b.block_id for b in res.context_blocks] == ["first", "tone"]
    assert [b.priority for b in res.context_blocks] == [1, 0]
