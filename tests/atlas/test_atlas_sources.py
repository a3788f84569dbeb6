"""Atlas/1.0 loading from its three sources (a directory, a manifest file, a
dict), the Runtime constructor, and the typed errors of missing paths and
manifests that are not JSON objects.
"""

from __future__ import annotations

import json
from pathlib import Path

import cra
import pytest
from cra.errors import CraError
from resolve_helpers import (
    GUARD,
    PRIORITIES,
    RESOURCES,
    action,
    fault_paths,
    make_atlas,
    new_session,
    policy,
    rejected,
    request,
)


def test_load_from_directory(rt: cra.Runtime) -> None:
    info = rt.load_atlas(RESOURCES)
    assert isinstance(info, cra.AtlasInfo)
    assert info.atlas_id == "org.cra.resources"
    assert info.version == "2.1.0"
    assert info.name == "Resources"
    assert info.description.startswith("Conformance atlas")
    assert info.actions == [
        "resource.get",
        "resource.list",
        "resource.create",
        "resource.update",
        "resource.delete",
    ]
    assert info.policies == ["allow-read", "allow-write", "never-delete"]
    assert info.capabilities == ["read", "write"]
    assert info.context_packs == ["overview", "removal"]
    assert info.default_ttl_seconds == 3600
    assert info.dependencies == {}


def test_load_from_directory_as_string_and_pathlib(rt: cra.Runtime) -> None:
    assert rt.load_atlas(str(PRIORITIES)).atlas_id == "org.cra.priorities"
    assert rt.load_atlas(Path(GUARD)).atlas_id == "org.cra.guard"


def test_load_from_manifest_file_reads_files_next_to_it(rt: cra.Runtime, tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "guide.md").write_text("Guide text.\n", encoding="utf-8")
    manifest = make_atlas(
        actions=[action("note.read")],
        policies=[policy("allow-all", "allow")],
        context_packs=[{"pack_id": "guide", "name": "Guide", "files": ["docs/guide.md"]}],
    )
    path = tmp_path / "my-atlas.json"
    path.write_text(json.dumps(manifest), encoding="utf-8")
    info = rt.load_atlas(path)
    assert info.atlas_id == "org.test.alpha"
    sid = new_session(rt)
    res = rt.resolve(request(rt, sid))
    assert [(b.block_id, b.content) for b in res.context_blocks] == [
        ("guide/docs/guide.md", "Guide text.\n")
    ]


def test_load_from_dict(rt: cra.Runtime) -> None:
    manifest = make_atlas(actions=[action("note.read")], policies=[policy("allow-all", "allow")])
    info = rt.load_atlas(manifest)
    assert info.actions == ["note.read"]
    assert info.policies == ["allow-all"]
    assert rt.atlas_manifest("org.test.alpha") == manifest


def test_load_from_dict_with_base_dir_for_files(rt: cra.Runtime, tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("Alpha.", encoding="utf-8")
    (tmp_path / "b.json").write_text('{"b": 1}', encoding="utf-8")
    manifest = make_atlas(
        context_packs=[{"pack_id": "docs", "name": "Docs", "files": ["a.md", "b.json"]}]
    )
    rt.load_atlas(manifest, base_dir=tmp_path)
    sid = new_session(rt)
    blocks = rt.resolve(request(rt, sid)).context_blocks
    assert [(b.block_id, b.content_type, b.content) for b in blocks] == [
        ("docs/a.md", "text/markdown", "Alpha."),
        ("docs/b.json", "application/json", '{"b": 1}'),
    ]


def test_dict_with_files_but_no_base_dir_is_rejected(rt: cra.Runtime) -> None:
    manifest = make_atlas(context_packs=[{"pack_id": "docs", "name": "Docs", "files": ["a.md"]}])
    err = rejected(rt, manifest)
    assert fault_paths(err) == ["/context_packs/0/files/0"]


def test_runtime_constructor_loads_atlases_in_order() -> None:
    with cra.Runtime(atlases=[RESOURCES, str(GUARD)]) as rt:
        assert [a.atlas_id for a in rt.atlases()] == ["org.cra.resources", "org.cra.guard"]


def test_missing_path_is_a_typed_error(rt: cra.Runtime, tmp_path: Path) -> None:
    with pytest.raises(CraError) as info:
        rt.load_atlas(tmp_path / "nowhere")
    assert info.value.code == "FILE_NOT_FOUND"
    assert info.value.http_status == 404  # the caller's input, never a 500
    assert rt.atlases() == []


def test_directory_without_atlas_json_is_rejected(rt: cra.Runtime, tmp_path: Path) -> None:
    err = rejected(rt, tmp_path)
    assert "atlas.json" in err.message


def test_manifest_that_is_not_json_is_rejected(rt: cra.Runtime, tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"atlas_version": "1.0", ', encoding="utf-8")
    err = rejected(rt, path)
    assert "not valid JSON" in err.message


def test_manifest_that_is_not_an_object_is_rejected(rt: cra.Runtime, tmp_path: Path) -> None:
    path = tmp_path / "list.json"
    path.write_text("[1, 2]", encoding="utf-8")
    assert fault_paths(rejected(rt, path)) == [""]
