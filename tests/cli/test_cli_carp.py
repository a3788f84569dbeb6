"""The command line of the resolver: `cra atlas validate`, `cra resolve`
and `cra conformance`, run as a user would (`python -m cra ...`)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from resolve_helpers import (
    CONFORMANCE,
    GUARD,
    RESOURCES,
    ROOT,
    action,
    atlas_path,
    make_atlas,
    policy,
)


def cra_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cra", *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def write_json(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


# -- atlas validate -----------------------------------------------------------------------


def test_validate_a_valid_atlas() -> None:
    out = cra_cli("atlas", "validate", str(RESOURCES))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"{RESOURCES}: valid — org.cra.resources 2.1.0"


def test_validate_an_invalid_atlas_reports_each_fault() -> None:
    out = cra_cli("atlas", "validate", atlas_path("missing-file"))
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    assert lines[0] == f"{atlas_path('missing-file')}: INVALID (ATLAS_INVALID, 1 fault(s))"
    assert lines[1].startswith("  /context_packs/0/files/0: ")
    assert "missing" in lines[1]


def test_validate_json_lists_every_fault(tmp_path: Path) -> None:
    bad = make_atlas(
        atlas_id="InvalidID",
        version="1.0",
        actions=[action("doc.read"), action("doc.read")],
        policies=[policy("p", "sometimes")],
    )
    path = write_json(tmp_path / "bad.json", bad)
    out = cra_cli("atlas", "validate", "--json", str(path))
    assert out.returncode == 1
    report = json.loads(out.stdout)
    assert report["path"] == str(path) and report["valid"] is False
    assert report["code"] == "ATLAS_INVALID"
    assert [f["path"] for f in report["errors"]] == [
        "/atlas_id",
        "/version",
        "/actions/1/action_id",
        "/policies/0/type",
    ]
    assert all(f["message"] for f in report["errors"])


def test_validate_json_of_a_valid_atlas() -> None:
    out = cra_cli("atlas", "validate", "--json", str(RESOURCES))
    assert out.returncode == 0
    assert json.loads(out.stdout) == {
        "path": str(RESOURCES),
        "valid": True,
        "atlas_id": "org.cra.resources",
        "version": "2.1.0",
        "errors": [],
    }


def test_validate_several_in_order(tmp_path: Path) -> None:
    dependent = write_json(
        tmp_path / "dependent.json",
        make_atlas("org.test.dependent", dependencies={"org.cra.resources": "^2"}),
    )
    # Later atlases may depend on earlier ones.
    ok = cra_cli("atlas", "validate", "--json", str(RESOURCES), str(dependent))
    assert ok.returncode == 0
    assert [r["valid"] for r in json.loads(ok.stdout)] == [True, True]
    # One invalid atlas makes the whole run fail, the others are still reported.
    bad = cra_cli("atlas", "validate", "--json", str(dependent), str(GUARD))
    assert bad.returncode == 1
    reports: list[dict[str, Any]] = json.loads(bad.stdout)
    assert [r["valid"] for r in reports] == [False, True]
    assert [f["path"] for f in reports[0]["errors"]] == ["/dependencies/org.cra.resources"]


def test_validate_a_path_that_does_not_exist(tmp_path: Path) -> None:
    """Code's choice: an unreadable path is reported like an invalid atlas (exit 1)."""
    out = cra_cli("atlas", "validate", "--json", str(tmp_path / "nowhere"))
    assert out.returncode == 1
    report = json.loads(out.stdout)
    assert report["valid"] is False and report["code"] == "FILE_NOT_FOUND"


def test_validate_needs_a_path() -> None:
    out = cra_cli("atlas", "validate")
    assert out.returncode == 2
    assert "PATH" in out.stderr


# -- resolve ---------------------------------------------------------------------------------


def _request(goal: str = "Manage resources", **task: Any) -> dict[str, Any]:
    return {
        "carp_version": "1.0",
        "request_id": "0193a0b0-0000-7000-8000-000000000c11",
        "timestamp": "$now",
        "operation": "resolve",
        "requester": {
            "agent_id": "cli-agent",
            "session_id": "0193a0b0-0000-7000-8000-000000000c12",
        },
        "task": dict({"goal": goal}, **task),
    }


def test_resolve_prints_the_resolution_and_writes_a_verifiable_trace(tmp_path: Path) -> None:
    req = write_json(tmp_path / "request.json", _request(risk_tier="low"))
    trace = tmp_path / "out.trace.jsonl"
    out = cra_cli(
        "resolve",
        "--atlas",
        str(RESOURCES),
        "--atlas",
        str(GUARD),
        "--request",
        str(req),
        "--trace-out",
        str(trace),
    )
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["request_id"] == "0193a0b0-0000-7000-8000-000000000c11"
    assert res["decision"]["type"] == "partial"
    assert [a["action_id"] for a in res["allowed_actions"]] == [
        "resource.get",
        "resource.list",
        "resource.create",
        "resource.update",
    ]
    assert res["denied_actions"] == [
        {
            "action_id": "resource.delete",
            "reason": "Guard rails forbid deletion",
            "policy_id": "no-deletes-anywhere",
        }
    ]
    assert res["ttl_seconds"] == 600
    events = [json.loads(line) for line in trace.read_text(encoding="utf-8").splitlines()]
    assert [e["event_type"] for e in events] == [
        "session.started",
        "carp.request.received",
        *["policy.evaluated"] * 5,
        "context.injected",
        "carp.resolution.completed",
    ]
    assert events[0]["payload"] == {"agent_id": "cli-agent", "goal": "Manage resources"}
    assert events[-1]["payload"]["resolution_id"] == res["resolution_id"]
    assert {e["trace_id"] for e in events} == {res["trace_id"]}
    verified = cra_cli("trace", "verify", str(trace))
    assert verified.returncode == 0, verified.stdout
    assert "VALID" in verified.stdout and "INVALID" not in verified.stdout


def test_resolve_with_session_goal(tmp_path: Path) -> None:
    req = write_json(tmp_path / "request.json", _request())
    trace = tmp_path / "t.trace.jsonl"
    out = cra_cli(
        "resolve",
        "--atlas",
        str(RESOURCES),
        "--request",
        str(req),
        "--session-goal",
        "A session goal",
        "--trace-out",
        str(trace),
    )
    assert out.returncode == 0, out.stderr
    first = json.loads(trace.read_text(encoding="utf-8").splitlines()[0])
    assert first["payload"]["goal"] == "A session goal"


def test_resolve_without_trace_out(tmp_path: Path) -> None:
    req = write_json(tmp_path / "request.json", _request())
    out = cra_cli("resolve", "--atlas", str(RESOURCES), "--request", str(req))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["decision"]["type"] == "partial"


def test_resolve_with_a_bad_request_prints_the_error_body(tmp_path: Path) -> None:
    req = write_json(tmp_path / "request.json", _request(risk_tier="extreme"))
    out = cra_cli("resolve", "--atlas", str(RESOURCES), "--request", str(req))
    assert out.returncode == 1
    assert out.stdout == ""
    body = json.loads(out.stderr)
    assert body["error"]["code"] == "INVALID_REQUEST"
    assert body["error"]["category"] == "validation"
    assert body["error"]["details"]["path"] == "/task/risk_tier"


def test_resolve_with_an_unreadable_request(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    out = cra_cli("resolve", "--atlas", str(RESOURCES), "--request", str(broken))
    assert out.returncode == 2 and "cannot read request" in out.stderr
    listed = write_json(tmp_path / "list.json", [1])
    out = cra_cli("resolve", "--atlas", str(RESOURCES), "--request", str(listed))
    assert out.returncode == 2 and "JSON object" in out.stderr


def test_resolve_with_an_invalid_atlas(tmp_path: Path) -> None:
    req = write_json(tmp_path / "request.json", _request())
    out = cra_cli("resolve", "--atlas", atlas_path("missing-file"), "--request", str(req))
    assert out.returncode == 2
    assert "ATLAS_INVALID" in out.stderr and out.stdout == ""


# -- conformance -----------------------------------------------------------------------------


def test_conformance_json_report() -> None:
    out = cra_cli("conformance", "--json")
    assert out.returncode == 0, out.stdout[-2000:]
    report = json.loads(out.stdout)
    assert set(report) == {"implementation", "version", "conformance_level", "test_run", "results"}
    assert report["implementation"] == "cra"
    assert report["version"] == __import__("cra").__version__
    assert report["conformance_level"] == "full"
    run = report["test_run"]
    assert set(run) == {"timestamp", "duration_ms", "total", "passed", "failed", "skipped"}
    assert run["total"] == len(report["results"]) == run["passed"] > 0
    assert run["failed"] == run["skipped"] == 0
    assert isinstance(run["duration_ms"], (int, float)) and run["duration_ms"] >= 0
    ids = [r["test_id"] for r in report["results"]]
    assert len(ids) == len(set(ids))
    for r in report["results"]:
        assert set(r) == {"test_id", "status", "duration_ms"}
        assert r["status"] == "passed"
    # The cases the resolver issue names are all there.
    for case in (
        "golden-worked-example",
        "policy-default-deny",
        "policy-require-approval-high-risk",
        "resolution-multi-atlas",
        "resolution-required-capabilities-read",
        "atlas-invalid-id",
        "atlas-version-not-semver",
    ):
        assert case in ids


def test_conformance_fails_on_a_wrong_case(tmp_path: Path) -> None:
    cases = tmp_path / "conformance"
    shutil.copytree(CONFORMANCE, cases)
    golden_file = cases / "golden.json"
    doc = json.loads(golden_file.read_text(encoding="utf-8"))
    doc["cases"][0]["steps"][0]["expect"]["resolution"]["ttl_seconds"] = 3601
    write_json(golden_file, doc)
    out = cra_cli("conformance", "--json", "--cases", str(cases))
    assert out.returncode == 1
    report = json.loads(out.stdout)
    assert report["conformance_level"] == "non_conformant"
    assert report["test_run"]["failed"] == 1
    [failed] = [r for r in report["results"] if r["status"] == "failed"]
    assert failed["test_id"] == "golden-worked-example"
    assert "/ttl_seconds" in failed["error"]
    # The human report says the same.
    text = cra_cli("conformance", "--cases", str(cases))
    assert text.returncode == 1
    assert "FAIL golden-worked-example" in text.stdout
    assert "1 failed" in text.stdout.splitlines()[-1]


def test_conformance_fails_on_a_wrong_atlas_expectation(tmp_path: Path) -> None:
    cases = tmp_path / "conformance"
    shutil.copytree(CONFORMANCE, cases)
    atlas_file = cases / "atlas.json"
    doc = json.loads(atlas_file.read_text(encoding="utf-8"))
    for case in doc["cases"]:
        if case["id"] == "atlas-invalid-id":
            case["expect"] = {"valid": True}
    write_json(atlas_file, doc)
    out = cra_cli("conformance", "--json", "--cases", str(cases))
    assert out.returncode == 1
    report = json.loads(out.stdout)
    assert [r["test_id"] for r in report["results"] if r["status"] == "failed"] == [
        "atlas-invalid-id"
    ]
