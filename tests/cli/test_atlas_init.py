"""`cra atlas init NAME [--dir DIR]`: a minimal atlas that validates, lints
clean under --strict and passes its own tests; never over an existing path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cra.cli import main


def test_init_makes_an_atlas_that_lints_and_tests_clean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["atlas", "init", "org.example.notes", "--dir", str(tmp_path)]) == 0
    d = tmp_path / "notes"
    names = sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file())
    assert names == [
        "atlas.json",
        "context/guide.md",
        "policies/default.json",
        "tests/policies.yaml",
    ]
    assert json.loads((d / "atlas.json").read_text())["atlas_id"] == "org.example.notes"
    assert main(["atlas", "validate", str(d)]) == 0
    assert main(["atlas", "lint", "--strict", str(d)]) == 0
    assert main(["atlas", "test", str(d), str(d / "tests" / "policies.yaml")]) == 0
    assert "2 passed, 0 failed" in capsys.readouterr().out


def test_a_plain_name_gets_a_local_id(tmp_path: Path) -> None:
    assert main(["atlas", "init", "my-notes", "--dir", str(tmp_path)]) == 0
    manifest = json.loads((tmp_path / "my-notes" / "atlas.json").read_text())
    assert manifest["atlas_id"] == "local.my-notes"
    assert manifest["actions"][0]["action_id"] == "my_notes.read"
    assert main(["atlas", "lint", "--strict", str(tmp_path / "my-notes")]) == 0


def test_init_refuses_an_existing_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    assert main(["atlas", "init", "notes", "--dir", str(tmp_path)]) == 2
    assert "exists already" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "notes").iterdir()] == ["keep.txt"]


def test_init_refuses_a_bad_name(tmp_path: Path) -> None:
    assert main(["atlas", "init", "Not A Name", "--dir", str(tmp_path)]) == 2
    assert list(tmp_path.iterdir()) == []
