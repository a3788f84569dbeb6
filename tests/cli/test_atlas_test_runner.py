"""`cra atlas test PATH TESTS... [--json]`: cases in YAML or JSON, each
resolved with a fresh runtime; failures as expected against got; exit 0
all passed, 1 a case failed, 2 an unreadable test file or atlas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cra.cli import main

MANIFEST: dict[str, Any] = {
    "atlas_version": "1.0",
    "atlas_id": "org.test.runner",
    "version": "1.0.0",
    "name": "Runner",
    "capabilities": [{"capability_id": "money", "actions": ["pay.refund"]}],
    "actions": [
        {"action_id": "doc.read", "name": "Read"},
        {"action_id": "pay.refund", "name": "Refund"},
        {"action_id": "db.drop", "name": "Drop"},
    ],
    "context_packs": [
        {"pack_id": "base", "content": "Be careful.", "priority": 1},
        {
            "pack_id": "money",
            "content": "Refunds over 100 need a manager.",
            "priority": 5,
            "conditions": {"keywords": ["refund"]},
        },
    ],
    "policies": [
        {"policy_id": "never-drop", "type": "deny", "actions": ["db.*"], "reason": "No drops"},
        {"policy_id": "refunds-approved", "type": "require_approval", "actions": ["pay.refund"]},
        {"policy_id": "allow-read", "type": "allow", "actions": ["doc.*"]},
        {
            "policy_id": "bots-read-nothing",
            "type": "deny",
            "actions": ["doc.read"],
            "conditions": {"agent_ids": ["bot-*"]},
        },
    ],
}

PASSING_YAML = """
description: the runner's own atlas
cases:
  - name: refunds wait for a human
    goal: Refund order 42
    expect:
      decision: partial
      allowed: [doc.read]
      requires_approval: [pay.refund]
      denied:
        - db.drop
        - {action_id: db.drop, policy_id: never-drop}
      context: [money, base]
  - name: bots read nothing
    goal: Read the docs
    agent_id: bot-7
    expect:
      decision: requires_approval
      denied: [{action_id: doc.read, policy_id: bots-read-nothing}]
      context: [base]
  - name: money only
    goal: Pay back
    capabilities: [money]
    risk_tier: high
    expect:
      decision: requires_approval
      requires_approval: [pay.refund]
"""


@pytest.fixture
def atlas_dir(tmp_path: Path) -> str:
    d = tmp_path / "atlas"
    d.mkdir()
    (d / "atlas.json").write_text(json.dumps(MANIFEST))
    return str(d)


def write(tmp_path: Path, name: str, text: str) -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_passing_yaml_cases_exit_0(
    atlas_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tests = write(tmp_path, "t.yaml", PASSING_YAML)
    assert main(["atlas", "test", atlas_dir, tests]) == 0
    out = capsys.readouterr().out
    assert f"PASS {tests}: refunds wait for a human" in out
    assert out.rstrip().endswith("3 passed, 0 failed")


def test_json_cases_and_json_report(
    atlas_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = {"name": "reads", "goal": "Read", "expect": {"allowed": ["doc.read"]}}
    tests = write(tmp_path, "t.json", json.dumps({"cases": [case]}))
    assert main(["atlas", "test", "--json", atlas_dir, tests]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "atlas": atlas_dir,
        "passed": 1,
        "failed": 0,
        "cases": [{"file": tests, "name": "reads", "passed": True, "failures": []}],
    }


FAILING_YAML = """
cases:
  - name: wrong on purpose
    goal: Refund order 42
    expect:
      decision: allow
      allowed: [pay.refund]
      denied: [{action_id: db.drop, policy_id: someone-else}, doc.read]
      context: [base]
"""


def test_failures_show_expected_against_got(
    atlas_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tests = write(tmp_path, "bad.yml", FAILING_YAML)
    assert main(["atlas", "test", atlas_dir, tests]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"FAIL {tests}: wrong on purpose",
        "  decision: expected 'allow', got 'partial'",
        "  allowed pay.refund: expected allowed, got requires approval",
        "  denied db.drop: expected denied by 'someone-else', got denied by 'never-drop' (No drops)",
        "  denied doc.read: expected denied, got allowed",
        "  context: expected ['base'], got ['money', 'base']",
        "0 passed, 1 failed",
    ]


def test_failures_in_json(
    atlas_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tests = write(tmp_path, "bad.yaml", FAILING_YAML)
    assert main(["atlas", "test", "--json", atlas_dir, tests]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["failed"] == 1
    assert report["cases"][0]["failures"][0] == {
        "what": "decision",
        "expected": "'allow'",
        "got": "'partial'",
    }


def test_a_refused_resolve_is_a_failure(
    atlas_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = {"name": "n", "goal": "g", "capabilities": ["nope"], "expect": {"decision": "deny"}}
    tests = write(tmp_path, "t.json", json.dumps({"cases": [case]}))
    assert main(["atlas", "test", atlas_dir, tests]) == 1
    assert "resolve: expected a resolution, got INVALID_REQUEST" in capsys.readouterr().out


def test_unknown_keys_are_errors_with_a_pointer_and_a_suggestion(
    atlas_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = """
cases:
  - name: typo
    goal: Read
    risk_teir: high
    expect: {alowed: [doc.read], denied: [{action_id: x.y, policy: p}]}
extra: 1
"""
    tests = write(tmp_path, "t.yaml", text)
    assert main(["atlas", "test", atlas_dir, tests]) == 2
    errors = capsys.readouterr().err
    assert "/cases/0/risk_teir: unknown key 'risk_teir' (did you mean 'risk_tier'?)" in errors
    assert "/cases/0/expect/alowed: unknown key 'alowed' (did you mean 'allowed'?)" in errors
    assert (
        "/cases/0/expect/denied/0/policy: unknown key 'policy' (did you mean 'policy_id'?)"
        in errors
    )
    assert "/extra: unknown key 'extra'" in errors


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ("cases: [", "(root): not valid"),
        ("[]", "(root): must be a mapping"),
        ("cases: [{name: a, goal: b}]", "/cases/0/expect: required"),
        ("cases: [{name: a, expect: {}}]", "/cases/0/goal: required"),
        ("cases: [{name: a, goal: 3, expect: {}}]", "/cases/0/goal: must be a string"),
        (
            "cases: [{name: a, goal: b, expect: {allowed: x}}]",
            "/cases/0/expect/allowed: must be a list",
        ),
    ],
)
def test_malformed_test_files_exit_2(
    atlas_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, fault: str
) -> None:
    tests = write(tmp_path, "t.yaml", text)
    assert main(["atlas", "test", atlas_dir, tests]) == 2
    assert fault in capsys.readouterr().err


def test_a_missing_test_file_or_atlas_exits_2(
    atlas_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tests = write(tmp_path, "t.yaml", PASSING_YAML)
    assert main(["atlas", "test", atlas_dir, str(tmp_path / "none.yaml")]) == 2
    assert main(["atlas", "test", str(tmp_path / "no-atlas"), tests]) == 2
    assert main(["atlas", "test", "--json", str(tmp_path / "no-atlas"), tests]) == 2
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "FILE_NOT_FOUND"
