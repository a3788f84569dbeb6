"""Atlas directory parts: policies and actions files merged into the manifest,
part files that are not JSON arrays, and faults in merged parts pointing into
the merged lists.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cra
import pytest
from resolve_helpers import (
    action,
    fault_paths,
    make_atlas,
    new_session,
    policy,
    rejected,
    request,
)


def _atlas_dir(tmp_path: Path, manifest: dict[str, Any]) -> Path:
    d = tmp_path / "atlas"
    d.mkdir()
    (d / "atlas.json").write_text(json.dumps(manifest), encoding="utf-8")
    return d


def _write(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value), encoding="utf-8")


def test_policies_and_actions_files_are_merged(rt: cra.Runtime, tmp_path: Path) -> None:
    manifest = make_atlas(
        actions=[action("doc.read")], policies=[policy("allow-read", "allow", ["doc.read"])]
    )
    d = _atlas_dir(tmp_path, manifest)
    _write(d / "actions" / "b.json", [action("doc.delete")])
    _write(d / "actions" / "a.json", [action("doc.write"), action("doc.share")])
    _write(d / "policies" / "z.json", [policy("no-delete", "deny", ["*.delete"])])
    _write(d / "policies" / "m.json", [policy("allow-write", "allow", ["doc.write"])])
    (d / "policies" / "notes.txt").write_text("not a policy file", encoding="utf-8")
    info = rt.load_atlas(d)
    # The manifest's own entries first, then each file in name order.
    assert info.actions == ["doc.read", "doc.write", "doc.share", "doc.delete"]
    assert info.policies == ["allow-read", "allow-write", "no-delete"]
    merged = rt.atlas_manifest(info.atlas_id)
    assert [a["action_id"] for a in merged["actions"]] == info.actions
    assert [p["policy_id"] for p in merged["policies"]] == info.policies
    sid = new_session(rt)
    res = rt.resolve(request(rt, sid))
    assert res.allowed_action_ids == ["doc.read", "doc.write"]
    assert {d.action_id: d.policy_id for d in res.denied_actions} == {
        "doc.share": "default-deny",
        "doc.delete": "no-delete",
    }


def test_parts_when_manifest_has_no_lists(rt: cra.Runtime, tmp_path: Path) -> None:
    manifest = make_atlas()
    del manifest["actions"], manifest["policies"]
    d = _atlas_dir(tmp_path, manifest)
    _write(d / "actions" / "all.json", [action("doc.read")])
    _write(d / "policies" / "all.json", [policy("allow-all", "allow")])
    info = rt.load_atlas(d)
    assert info.actions == ["doc.read"] and info.policies == ["allow-all"]


@pytest.mark.parametrize("part", ["policies", "actions"])
@pytest.mark.parametrize("content", [{"policy_id": "p", "type": "allow"}, "text", 3, None])
def test_part_file_that_is_not_an_array_is_rejected(
    rt: cra.Runtime, tmp_path: Path, part: str, content: Any
) -> None:
    d = _atlas_dir(tmp_path, make_atlas())
    _write(d / part / "bad.json", content)
    err = rejected(rt, d)
    assert fault_paths(err) == [f"/{part}"]
    assert f"{part}/bad.json" in err.message


def test_part_file_that_is_not_json_is_rejected(rt: cra.Runtime, tmp_path: Path) -> None:
    d = _atlas_dir(tmp_path, make_atlas())
    (d / "policies").mkdir()
    (d / "policies" / "broken.json").write_text("[{", encoding="utf-8")
    err = rejected(rt, d)
    assert "policies/broken.json" in err.message


def test_faults_in_merged_parts_point_into_the_merged_lists(
    rt: cra.Runtime, tmp_path: Path
) -> None:
    d = _atlas_dir(tmp_path, make_atlas(policies=[policy("allow-all", "allow")]))
    _write(d / "policies" / "extra.json", [policy("allow-all", "deny"), policy("x", "sometimes")])
    err = rejected(rt, d)
    assert fault_paths(err) == ["/policies/1/policy_id", "/policies/2/type"]
