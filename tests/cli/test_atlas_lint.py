"""`cra atlas lint PATH... [--json] [--strict]`: each rule on an atlas that
triggers it and on one that does not; exit 0 clean, 1 errors (or warnings
with --strict), 2 an atlas that does not load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cra.cli import main
from cra.lint import RULES, lint


def atlas(tmp_path: Path, policies: list[dict[str, Any]], **extra: Any) -> str:
    """An atlas directory with actions a.read, a.write, b.run and the policies."""
    d = tmp_path / "atlas"
    d.mkdir(exist_ok=True)
    manifest: dict[str, Any] = {
        "atlas_version": "1.0",
        "atlas_id": "org.test.lint",
        "version": "1.0.0",
        "name": "Lint",
        "actions": [
            {"action_id": "a.read", "name": "Read"},
            {"action_id": "a.write", "name": "Write"},
            {"action_id": "b.run", "name": "Run"},
        ],
        "policies": policies,
    }
    manifest.update(extra)
    (d / "atlas.json").write_text(json.dumps(manifest))
    return str(d)


ALLOW_ALL = {"policy_id": "allow-all", "type": "allow", "actions": ["a.*", "b.*"]}


def rules_of(path: str) -> list[tuple[str, str]]:
    return [(f.rule, f.pointer) for f in lint([path]).findings]


def test_a_clean_atlas_has_no_findings_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = atlas(tmp_path, [ALLOW_ALL])
    assert rules_of(path) == []
    assert main(["atlas", "lint", "--strict", path]) == 0
    assert "0 error(s), 0 warning(s)" in capsys.readouterr().out


def test_l001_allow_fully_covered_by_an_unconditional_deny(tmp_path: Path) -> None:
    deny = {"policy_id": "no-a", "type": "deny", "actions": ["a.*"]}
    allow_a = {"policy_id": "allow-a", "type": "allow", "actions": ["a.read", "a.write"]}
    assert ("CRA-L001", "/policies/1") in rules_of(atlas(tmp_path, [deny, allow_a, ALLOW_ALL]))


def test_l001_not_when_the_deny_has_conditions_or_misses_an_action(tmp_path: Path) -> None:
    conditional = {
        "policy_id": "no-a",
        "type": "deny",
        "actions": ["a.*"],
        "conditions": {"risk_tiers": ["high"]},
    }
    assert rules_of(atlas(tmp_path, [conditional, ALLOW_ALL])) == []
    partial = {"policy_id": "no-read", "type": "deny", "actions": ["a.read"]}
    assert [r for r, _ in rules_of(atlas(tmp_path, [partial, ALLOW_ALL]))] == []


def test_l001_a_deny_at_every_tier_is_unconditional(tmp_path: Path) -> None:
    every = {
        "policy_id": "no-a",
        "type": "deny",
        "actions": ["a.*"],
        "conditions": {"risk_tiers": ["low", "medium", "high", "critical"], "agent_ids": ["*"]},
    }
    allow_a = {"policy_id": "allow-a", "type": "allow", "actions": ["a.*"]}
    assert ("CRA-L001", "/policies/1") in rules_of(atlas(tmp_path, [every, allow_a, ALLOW_ALL]))


def test_l002_limits_on_an_always_denied_action(tmp_path: Path) -> None:
    deny = {"policy_id": "no-b", "type": "deny", "actions": ["b.*"]}
    rate = {
        "policy_id": "b-rate",
        "type": "rate_limit",
        "actions": ["b.run"],
        "parameters": {"max_calls": 1, "window_seconds": 1},
    }
    approve = {"policy_id": "b-approve", "type": "require_approval", "actions": ["b.run"]}
    budget = {
        "policy_id": "b-budget",
        "type": "budget",
        "actions": ["b.*"],
        "parameters": {"limit": 3},
    }
    found = rules_of(atlas(tmp_path, [deny, rate, approve, budget, ALLOW_ALL]))
    assert [p for r, p in found if r == "CRA-L002"] == ["/policies/1", "/policies/2", "/policies/3"]


def test_l002_not_when_some_action_is_not_denied(tmp_path: Path) -> None:
    deny = {"policy_id": "no-write", "type": "deny", "actions": ["a.write"]}
    rate = {
        "policy_id": "a-rate",
        "type": "rate_limit",
        "actions": ["a.*"],
        "parameters": {"max_calls": 1, "window_seconds": 1},
    }
    assert rules_of(atlas(tmp_path, [deny, rate, ALLOW_ALL])) == []


def test_l003_a_policy_no_agent_can_meet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nobody = {
        "policy_id": "nobody",
        "type": "deny",
        "actions": ["b.run"],
        "conditions": {"agent_ids": []},
    }
    path = atlas(tmp_path, [nobody, ALLOW_ALL])
    assert ("CRA-L003", "/policies/0/conditions") in rules_of(path)
    assert main(["atlas", "lint", path]) == 1  # an error
    assert "error CRA-L003" in capsys.readouterr().out
    someone = dict(nobody, conditions={"agent_ids": ["ops-*"]})
    assert rules_of(atlas(tmp_path, [someone, ALLOW_ALL])) == []


def pack(**conditions: Any) -> dict[str, Any]:
    return {"pack_id": "guide", "content": "Be brief.", "conditions": conditions}


def test_l004_a_pack_no_goal_can_select(tmp_path: Path) -> None:
    path = atlas(tmp_path, [ALLOW_ALL], context_packs=[pack(keywords=[])])
    assert rules_of(path) == [("CRA-L004", "/context_packs/0/conditions/keywords")]
    caps = [{"capability_id": "reading", "actions": ["a.read"]}]
    path = atlas(tmp_path, [ALLOW_ALL], capabilities=caps, context_packs=[pack(capabilities=[])])
    assert rules_of(path) == [("CRA-L004", "/context_packs/0/conditions/capabilities")]


def test_l004_not_for_packs_that_can_be_selected(tmp_path: Path) -> None:
    caps = [{"capability_id": "reading", "actions": ["a.read"]}]
    packs = [pack(keywords=["read"], capabilities=["reading"], risk_tiers=["low"])]
    assert rules_of(atlas(tmp_path, [ALLOW_ALL], capabilities=caps, context_packs=packs)) == []


def test_l005_an_action_nothing_allows(tmp_path: Path) -> None:
    only_a = {"policy_id": "allow-a", "type": "allow", "actions": ["a.*"]}
    assert rules_of(atlas(tmp_path, [only_a])) == [("CRA-L005", "/actions/2")]
    on_purpose = {"policy_id": "no-b", "type": "deny", "actions": ["b.run"]}
    assert rules_of(atlas(tmp_path, [only_a, on_purpose])) == []


def rate(pid: str, pattern: str, **params: Any) -> dict[str, Any]:
    p = {"max_calls": 5, "window_seconds": 60, **params}
    return {"policy_id": pid, "type": "rate_limit", "actions": [pattern], "parameters": p}


def test_l006_two_rate_limits_on_one_action_and_scope(tmp_path: Path) -> None:
    path = atlas(tmp_path, [rate("r1", "a.*"), rate("r2", "a.write"), ALLOW_ALL])
    assert rules_of(path) == [("CRA-L006", "/policies/1")]


def test_l006_not_across_scopes_or_disjoint_tiers(tmp_path: Path) -> None:
    scoped = [rate("r1", "a.*"), rate("r2", "a.write", scope="global"), ALLOW_ALL]
    assert rules_of(atlas(tmp_path, scoped)) == []
    high = dict(rate("r2", "a.write"), conditions={"risk_tiers": ["high"]})
    low = dict(rate("r1", "a.*"), conditions={"risk_tiers": ["low"]})
    assert rules_of(atlas(tmp_path, [low, high, ALLOW_ALL])) == []


def test_l007_a_pack_needing_an_unknown_capability(tmp_path: Path) -> None:
    path = atlas(tmp_path, [ALLOW_ALL], context_packs=[pack(capabilities=["nowhere"])])
    assert rules_of(path) == [("CRA-L007", "/context_packs/0/conditions/capabilities")]


def test_an_empty_risk_tiers_never_applies(tmp_path: Path) -> None:
    deny = {
        "policy_id": "no-b",
        "type": "deny",
        "actions": ["b.run"],
        "conditions": {"risk_tiers": []},
    }
    path = atlas(tmp_path, [deny, ALLOW_ALL], context_packs=[pack(risk_tiers=[])])
    assert rules_of(path) == [
        ("CRA-L003", "/policies/0/conditions"),
        ("CRA-L004", "/context_packs/0/conditions/risk_tiers"),
    ]


def test_warnings_fail_only_with_strict(tmp_path: Path) -> None:
    path = atlas(tmp_path, [{"policy_id": "allow-a", "type": "allow", "actions": ["a.*"]}])
    assert main(["atlas", "lint", path]) == 0
    assert main(["atlas", "lint", "--strict", path]) == 1


def test_json_report_is_stable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = atlas(tmp_path, [{"policy_id": "allow-a", "type": "allow", "actions": ["a.*"]}])
    assert main(["atlas", "lint", "--json", path]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == {
        "lint_version": "1",
        "paths": [path],
        "atlases": ["org.test.lint"],
        "valid": True,
        "invalid": [],
        "summary": {"errors": 0, "warnings": 1},
        "findings": [
            {
                "rule": "CRA-L005",
                "severity": "warning",
                "atlas_id": "org.test.lint",
                "pointer": "/actions/2",
                "message": report["findings"][0]["message"],
            }
        ],
        "strict": False,
        "exit_status": 0,
    }


def test_l008_a_guard_that_matches_nothing_linted(tmp_path: Path) -> None:
    """Loading accepts a `*` guard that matches nothing (it may guard atlases
    loaded later); lint, seeing every atlas of the deployment, warns."""
    typo = {"policy_id": "no-deletes", "type": "deny", "actions": ["*.delte", "*.run"]}
    assert ("CRA-L008", "/policies/0/actions/0") in rules_of(atlas(tmp_path, [typo, ALLOW_ALL]))
    found = [r for r in rules_of(atlas(tmp_path, [typo, ALLOW_ALL])) if r[0] == "CRA-L008"]
    assert found == [("CRA-L008", "/policies/0/actions/0")]  # `*.run` matches b.run


def test_an_invalid_atlas_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = atlas(tmp_path, [{"policy_id": "p", "type": "permit"}])
    assert main(["atlas", "lint", path]) == 2
    assert "/policies/0/type" in capsys.readouterr().out
    assert main(["atlas", "lint", str(tmp_path / "missing")]) == 2


def test_every_rule_is_documented() -> None:
    spec = (Path(__file__).resolve().parents[2] / "specs" / "atlas-tools.md").read_text()
    for rule, (severity, name, _check) in RULES.items():
        assert f"| `{rule}` | {severity} | `{name}` |" in spec
