"""The life of a loaded atlas: load, conflicting ids, replace (atomic, keeping
the old atlas on failure), unload, the atlases() listing and manifest, and
context files read at load time.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import cra
import pytest
from cra.errors import ConflictError, NotFoundError
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

# -- load, replace, unload -----------------------------------------------------


def test_loading_a_loaded_id_is_a_conflict(rt: cra.Runtime) -> None:
    rt.load_atlas(RESOURCES)
    with pytest.raises(ConflictError) as info:
        rt.load_atlas(RESOURCES)
    assert info.value.code == "ATLAS_ALREADY_LOADED"
    assert info.value.http_status == 409
    assert [a.atlas_id for a in rt.atlases()] == ["org.cra.resources"]


def test_replace_swaps_the_atlas(rt: cra.Runtime) -> None:
    v1 = make_atlas(actions=[action("doc.read")], policies=[policy("allow-all", "allow")])
    v2 = make_atlas(
        version="1.1.0",
        actions=[action("doc.read"), action("doc.write")],
        policies=[policy("deny-all", "deny", reason="closed for maintenance")],
    )
    rt.load_atlas(v1)
    sid = new_session(rt)
    assert rt.resolve(request(rt, sid)).decision.type == "allow"
    info = rt.load_atlas(v2, replace=True)
    assert info.version == "1.1.0"
    assert [(a.atlas_id, a.version) for a in rt.atlases()] == [("org.test.alpha", "1.1.0")]
    res = rt.resolve(request(rt, sid))
    assert res.decision.type == "deny"
    assert res.decision.reason == "closed for maintenance"
    assert res.denied_action_ids == ["doc.read", "doc.write"]
    assert rt.atlas_manifest("org.test.alpha") == v2


def test_replace_of_an_id_not_loaded_loads_it(rt: cra.Runtime) -> None:
    assert rt.load_atlas(RESOURCES, replace=True).atlas_id == "org.cra.resources"


def test_failed_replace_keeps_the_old_atlas(rt: cra.Runtime) -> None:
    good = make_atlas(actions=[action("doc.read")], policies=[policy("allow-all", "allow")])
    rt.load_atlas(good)
    bad = copy.deepcopy(good)
    bad["version"] = "2"
    rejected(rt, bad, replace=True)
    assert rt.atlases()[0].version == "1.0.0"
    assert rt.atlas_manifest("org.test.alpha") == good


def test_replace_may_keep_its_own_action_ids(rt: cra.Runtime) -> None:
    rt.load_atlas(RESOURCES)
    info = rt.load_atlas(RESOURCES, replace=True)
    assert "resource.get" in info.actions


def test_unload_removes_actions_policies_and_context(rt: cra.Runtime) -> None:
    rt.load_atlas(RESOURCES)
    rt.load_atlas(GUARD)
    sid = new_session(rt)
    res = rt.resolve(request(rt, sid, "Delete a resource"))
    assert {d.action_id: d.policy_id for d in res.denied_actions} == {
        "resource.delete": "no-deletes-anywhere"
    }
    rt.unload_atlas("org.cra.guard")
    res = rt.resolve(request(rt, sid, "Delete a resource"))
    assert {d.action_id: d.policy_id for d in res.denied_actions} == {
        "resource.delete": "never-delete"
    }
    assert res.ttl_seconds == 3600  # the guard's 600 s no longer counts
    assert [b.block_id for b in res.context_blocks] == [
        "overview/context/overview.md",
        "removal/context/removal.md",
    ]
    rt.unload_atlas("org.cra.resources")
    assert rt.atlases() == []
    res = rt.resolve(request(rt, sid, "Delete a resource"))
    assert res.decision.type == "deny"
    assert res.decision.reason == "No actions matched the request"
    assert res.allowed_actions == [] and res.denied_actions == []
    assert res.context_blocks == [] and res.constraints == []
    with pytest.raises(NotFoundError) as info:
        rt.resolve(request(rt, sid, atlas_ids=["org.cra.resources"]))
    assert info.value.code == "ATLAS_NOT_FOUND"


def test_unload_unknown_id(rt: cra.Runtime) -> None:
    with pytest.raises(NotFoundError) as info:
        rt.unload_atlas("org.cra.nowhere")
    assert info.value.code == "ATLAS_NOT_FOUND"
    assert info.value.http_status == 404
    rt.load_atlas(RESOURCES)
    rt.unload_atlas("org.cra.resources")
    with pytest.raises(NotFoundError):
        rt.unload_atlas("org.cra.resources")


def test_unloaded_id_can_be_loaded_again(rt: cra.Runtime) -> None:
    rt.load_atlas(RESOURCES)
    rt.unload_atlas("org.cra.resources")
    assert rt.load_atlas(RESOURCES).atlas_id == "org.cra.resources"


def test_action_ids_colliding_across_atlases_are_rejected(rt: cra.Runtime) -> None:
    rt.load_atlas(RESOURCES)
    other = make_atlas(
        "org.test.other",
        actions=[action("doc.read"), action("resource.get"), action("resource.delete")],
    )
    err = rejected(rt, other)
    assert fault_paths(err) == ["/actions/1/action_id", "/actions/2/action_id"]
    assert "org.cra.resources" in err.errors[0]["message"]
    # After the owner is gone, the same ids are free.
    rt.unload_atlas("org.cra.resources")
    assert rt.load_atlas(other).atlas_id == "org.test.other"


def test_atlases_and_atlas_manifest(rt: cra.Runtime) -> None:
    assert rt.atlases() == []
    rt.load_atlas(PRIORITIES)
    rt.load_atlas(RESOURCES)
    infos = rt.atlases()
    assert [a.atlas_id for a in infos] == ["org.cra.priorities", "org.cra.resources"]
    assert infos[0].default_ttl_seconds == 1200
    with open(RESOURCES / "atlas.json", encoding="utf-8") as f:
        assert rt.atlas_manifest("org.cra.resources") == json.load(f)
    with pytest.raises(NotFoundError) as info:
        rt.atlas_manifest("org.cra.nowhere")
    assert info.value.code == "ATLAS_NOT_FOUND"
    # AtlasInfo is a frozen value.
    with pytest.raises(AttributeError):
        infos[0].atlas_id = "x"  # type: ignore[misc]


# -- context is read at load time -----------------------------------------------


def test_context_files_are_read_at_load_time(rt: cra.Runtime, tmp_path: Path) -> None:
    copy_dir = tmp_path / "resources"
    shutil.copytree(RESOURCES, copy_dir)
    rt.load_atlas(copy_dir)
    original = (copy_dir / "context" / "overview.md").read_text(encoding="utf-8")
    (copy_dir / "context" / "overview.md").unlink()
    (copy_dir / "context" / "removal.md").write_text("changed after load", encoding="utf-8")
    sid = new_session(rt)
    blocks = rt.resolve(request(rt, sid, "remove something")).context_blocks
    assert [b.content for b in blocks] == [
        original,
        "# Removing resources\n\nNothing is removed here: archive a resource with resource.update.\n",
    ]
    shutil.rmtree(copy_dir)
    assert rt.resolve(request(rt, sid)).context_blocks[0].content == original
