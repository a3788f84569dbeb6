"""`cra.testing`: assertion helpers over one resolve, with messages that
say what was expected and what came back, and `run_cases` over a test file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cra
import pytest
from cra.testing import (
    assert_allowed,
    assert_context,
    assert_decision,
    assert_denied,
    assert_requires_approval,
    resolve,
    run_cases,
)

ATLAS: dict[str, Any] = {
    "atlas_version": "1.0",
    "atlas_id": "org.test.helpers",
    "version": "1.0.0",
    "name": "Helpers",
    "actions": [
        {"action_id": "doc.read", "name": "Read"},
        {"action_id": "pay.refund", "name": "Refund"},
        {"action_id": "db.drop", "name": "Drop"},
    ],
    "context_packs": [
        {"pack_id": "base", "content": "Be careful."},
        {"pack_id": "crit", "content": "Page someone.", "conditions": {"risk_tiers": ["critical"]}},
    ],
    "policies": [
        {"policy_id": "never-drop", "type": "deny", "actions": ["db.*"]},
        {"policy_id": "refunds-approved", "type": "require_approval", "actions": ["pay.*"]},
        {"policy_id": "allow-read", "type": "allow", "actions": ["doc.*"]},
    ],
}


def test_helpers_pass_and_return_the_resolution() -> None:
    res = assert_allowed(ATLAS, "Read", "doc.read")
    assert isinstance(res, cra.CARPResolution)
    assert_denied(ATLAS, "Drop it", "db.drop")
    assert_denied(ATLAS, "Drop it", "db.drop", policy_id="never-drop")
    assert_requires_approval(ATLAS, "Refund", "pay.refund")
    assert_decision(ATLAS, "Anything", "partial")
    assert_context(ATLAS, "Anything", ["base"])
    assert_context(ATLAS, "Anything", ["base", "crit"], risk_tier="critical")


def test_helpers_take_a_runtime_with_atlases_loaded() -> None:
    with cra.Runtime() as rt:
        rt.load_atlas(ATLAS)
        assert_allowed(rt, "Read", "doc.read", agent_id="someone")
        assert_decision(rt, "Read", "deny", atlas_ids=[])  # no candidates at all


def test_helpers_take_a_path(tmp_path: Path) -> None:
    (tmp_path / "atlas.json").write_text(json.dumps(ATLAS))
    assert_allowed(tmp_path, "Read", "doc.read")
    assert_allowed(str(tmp_path / "atlas.json"), "Read", "doc.read")


def test_failure_messages_say_expected_and_got() -> None:
    with pytest.raises(AssertionError) as e:
        assert_allowed(ATLAS, "Drop it", "db.drop")
    msg = str(e.value)
    assert "for goal 'Drop it':" in msg
    assert "allowed db.drop: expected allowed, got denied by 'never-drop'" in msg
    assert "decision 'partial'" in msg
    with pytest.raises(
        AssertionError, match="expected denied by 'other', got denied by 'never-drop'"
    ):
        assert_denied(ATLAS, "x", "db.drop", policy_id="other")
    with pytest.raises(AssertionError, match="expected requires approval, got allowed"):
        assert_requires_approval(ATLAS, "x", "doc.read")
    with pytest.raises(AssertionError, match=r"context: expected \['crit'\], got \['base'\]"):
        assert_context(ATLAS, "x", ["crit"])
    with pytest.raises(AssertionError, match="decision: expected 'allow', got 'partial'"):
        assert_decision(ATLAS, "x", "allow")
    with pytest.raises(AssertionError, match="got not in the resolution"):
        assert_allowed(ATLAS, "x", "no.such")


def test_unknown_request_arguments_are_refused() -> None:
    with pytest.raises(TypeError, match="risk"):
        resolve(ATLAS, "x", risk="high")


def test_run_cases(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    case = {"name": "reads", "goal": "Read", "expect": {"allowed": ["doc.read"]}}
    good.write_text(json.dumps({"cases": [case]}))
    results = run_cases(ATLAS, good)
    assert [r.passed for r in results] == [True]
    bad = tmp_path / "bad.yaml"
    bad.write_text("cases:\n  - name: drops\n    goal: Drop\n    expect: {allowed: [db.drop]}\n")
    with pytest.raises(AssertionError) as e:
        run_cases([ATLAS], bad)
    assert str(e.value).splitlines() == [
        f"1 of 1 case(s) failed in {bad}:",
        "  drops:",
        "    allowed db.drop: expected allowed, got denied by 'never-drop' (Denied by policy never-drop)",
    ]
