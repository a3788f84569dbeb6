"""The conformance cases ship inside the package (`cra/conformance_cases/`):
`cra conformance` finds them from any directory, `--cases DIR` still runs
other cases, and a directory without any case is an error (exit 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cra
import pytest
from cra.conformance import CASES_DIR, default_cases_dir, load_cases

EXIT_NO_CASES = 2


def run_cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m cra ARGS` in `cwd`, without `CRA_CONFORMANCE_DIR` unless given."""
    environ = {k: v for k, v in os.environ.items() if k != "CRA_CONFORMANCE_DIR"}
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "cra", *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environ,
        timeout=300,
    )


def test_the_cases_live_in_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRA_CONFORMANCE_DIR", raising=False)
    package = Path(cra.__file__).resolve().parent
    assert CASES_DIR == package / "conformance_cases"
    assert default_cases_dir() == CASES_DIR
    assert (CASES_DIR / "atlases").is_dir()
    assert len(load_cases(CASES_DIR)) > 0
    # Data only: nothing in the directory is Python.
    assert not list(CASES_DIR.rglob("*.py"))


def test_the_environment_variable_still_points_elsewhere(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CRA_CONFORMANCE_DIR", str(tmp_path))
    assert default_cases_dir() == tmp_path
    monkeypatch.setenv("CRA_CONFORMANCE_DIR", str(tmp_path / "missing"))
    assert default_cases_dir() is None


def test_the_packaged_cases_run_from_another_directory(tmp_path: Path) -> None:
    proc = run_cli("conformance", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    run = report["test_run"]
    assert run["total"] > 0
    assert run["total"] == run["passed"] == len(load_cases(CASES_DIR))
    assert report["conformance_level"] == "full"


def test_an_empty_cases_directory_exits_2(tmp_path: Path) -> None:
    empty = tmp_path / "cases"
    empty.mkdir()
    for args in (("--json",), ()):
        proc = run_cli("conformance", *args, "--cases", str(empty), cwd=tmp_path)
        assert proc.returncode == EXIT_NO_CASES
        assert "no conformance cases found" in proc.stderr
        assert proc.stdout == ""


def test_a_directory_of_atlases_only_has_no_cases(tmp_path: Path) -> None:
    cases = tmp_path / "cases"
    (cases / "atlases" / "a").mkdir(parents=True)
    (cases / "atlases" / "a" / "atlas.json").write_text('{"cases": [{"id": "x"}]}')
    (cases / "notes.json").write_text('{"group": "nothing here"}')
    proc = run_cli("conformance", "--cases", str(cases), cwd=tmp_path)
    assert proc.returncode == EXIT_NO_CASES
    assert "no conformance cases found" in proc.stderr


def test_a_missing_cases_directory_exits_2(tmp_path: Path) -> None:
    proc = run_cli("conformance", "--cases", str(tmp_path / "missing"), cwd=tmp_path)
    assert proc.returncode == EXIT_NO_CASES
    assert "no conformance cases found" in proc.stderr


def test_custom_cases_run_from_their_directory(tmp_path: Path) -> None:
    cases = tmp_path / "cases"
    cases.mkdir()
    case = {"id": "chain-empty", "kind": "chain", "events": [], "expect": {"valid": True}}
    (cases / "mine.json").write_text(json.dumps({"group": "mine", "cases": [case]}))
    proc = run_cli("conformance", "--json", "--cases", str(cases), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert [r["test_id"] for r in report["results"]] == ["chain-empty"]
