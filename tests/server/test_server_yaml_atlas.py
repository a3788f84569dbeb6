"""`cra serve --atlas-dir` loads YAML atlases beside JSON ones: a directory
with `atlas.yaml` and a loose `*.yml` manifest."""

from __future__ import annotations

from pathlib import Path

import cra
from cra.server.state import load_atlas_dir

DIR_ATLAS = """\
atlas_version: "1.0"
atlas_id: org.test.yamldir
version: 1.0.0
name: YAML directory
actions:
  - action_id: note.add
    name: Add a note
policies:
  - policy_id: allow-notes
    type: allow
    actions: ["note.*"]
"""

FILE_ATLAS = DIR_ATLAS.replace("org.test.yamldir", "org.test.yamlfile").replace("note.", "memo.")


def test_yaml_atlases_in_the_atlas_dir_are_loaded(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "atlas.yaml").write_text(DIR_ATLAS, encoding="utf-8")
    (tmp_path / "loose.yml").write_text(FILE_ATLAS, encoding="utf-8")
    (tmp_path / "ignored.txt").write_text("not an atlas", encoding="utf-8")
    with cra.Runtime() as rt:
        assert sorted(load_atlas_dir(rt, str(tmp_path))) == [
            "org.test.yamldir",
            "org.test.yamlfile",
        ]
