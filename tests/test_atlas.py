"""Atlas/1.0 loading: the three sources (directory, manifest file, dict),
every rejection of §2 with its JSON pointer, all faults at once, directory
parts, load/replace/unload, big and deeply nested input, and context read
at load time."""

from __future__ import annotations

import copy
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import cra
import pytest
from cra.errors import ConflictError, CraError, NotFoundError, ValidationError
from resolve_helpers import (
    GUARD,
    PRIORITIES,
    RESOURCES,
    action,
    atlas_path,
    make_atlas,
    new_session,
    policy,
    request,
)


@pytest.fixture
def rt() -> Iterator[cra.Runtime]:
    runtime = cra.Runtime()
    yield runtime
    runtime.close(timeout=10)


def fault_paths(err: CraError) -> list[str]:
    return [f["path"] for f in err.errors]


def rejected(rt: cra.Runtime, source: Any, **kw: Any) -> CraError:
    """Loads `source`, which must be rejected as ATLAS_INVALID."""
    before = [a.atlas_id for a in rt.atlases()]
    with pytest.raises(ValidationError) as info:
        rt.load_atlas(source, **kw)
    err = info.value
    assert err.code == "ATLAS_INVALID"
    assert err.category == "validation" and err.http_status == 400
    for f in err.errors:
        assert f["message"], f
        assert f["path"] == "" or f["path"].startswith("/"), f
    assert err.path == err.errors[0]["path"]
    # A rejected atlas changes nothing.
    assert [a.atlas_id for a in rt.atlases()] == before
    return err


# -- the three sources --------------------------------------------------------


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


# -- every §2 rejection with its path ------------------------------------------

Mutator = Callable[[dict[str, Any]], None]


def _set(key: str, value: Any) -> Mutator:
    def f(m: dict[str, Any]) -> None:
        m[key] = value

    return f


def _drop(key: str) -> Mutator:
    def f(m: dict[str, Any]) -> None:
        del m[key]

    return f


def _policies(*items: dict[str, Any]) -> Mutator:
    return _set("policies", list(items))


def _schema(schema: Any) -> Mutator:
    return _set("actions", [action("a.b", parameters_schema=schema)])


BASE_ACTIONS = [action("doc.read"), action("doc.delete")]

REJECTIONS: dict[str, tuple[Mutator, list[str]]] = {
    "atlas_version 2.0": (_set("atlas_version", "2.0"), ["/atlas_version"]),
    "atlas_version number": (_set("atlas_version", 1.0), ["/atlas_version"]),
    "atlas_version missing": (_drop("atlas_version"), ["/atlas_version"]),
    "atlas id InvalidID": (_set("atlas_id", "InvalidID"), ["/atlas_id"]),
    "atlas id one segment": (_set("atlas_id", "example"), ["/atlas_id"]),
    "atlas id underscore": (_set("atlas_id", "com.my_atlas"), ["/atlas_id"]),
    "atlas id missing": (_drop("atlas_id"), ["/atlas_id"]),
    "semver 1.0": (_set("version", "1.0"), ["/version"]),
    "semver v1.0.0": (_set("version", "v1.0.0"), ["/version"]),
    "semver leading zero": (_set("version", "01.0.0"), ["/version"]),
    "semver number": (_set("version", 1), ["/version"]),
    "name empty": (_set("name", ""), ["/name"]),
    "name too long": (_set("name", "n" * 101), ["/name"]),
    "description too long": (_set("description", "d" * 1001), ["/description"]),
    "ttl too large": (_set("default_ttl_seconds", 86_401), ["/default_ttl_seconds"]),
    "ttl negative": (_set("default_ttl_seconds", -1), ["/default_ttl_seconds"]),
    "duplicate action": (
        _set("actions", [action("doc.read"), action("doc.write"), action("doc.read")]),
        ["/actions/2/action_id"],
    ),
    "bad action id": (_set("actions", [action("Doc.Read")]), ["/actions/0/action_id"]),
    "bad action risk tier": (
        _set("actions", [action("doc.read", risk_tier="extreme")]),
        ["/actions/0/risk_tier"],
    ),
    "duplicate policy": (
        _policies(policy("p", "allow"), policy("p", "deny")),
        ["/policies/1/policy_id"],
    ),
    "duplicate pack": (
        _set(
            "context_packs",
            [
                {"pack_id": "k", "name": "K", "content": "x"},
                {"pack_id": "k", "name": "K2", "content": "y"},
            ],
        ),
        ["/context_packs/1/pack_id"],
    ),
    "duplicate capability": (
        _set(
            "capabilities",
            [
                {"capability_id": "c", "name": "C", "actions": []},
                {"capability_id": "c", "name": "C", "actions": []},
            ],
        ),
        ["/capabilities/1/capability_id"],
    ),
    "capability names an unknown action": (
        _set(
            "capabilities",
            [{"capability_id": "read", "name": "Read", "actions": ["doc.read", "doc.print"]}],
        ),
        ["/capabilities/0/actions/1"],
    ),
    "pattern with ?": (_policies(policy("p", "deny", ["Resource.?"])), ["/policies/0/actions/0"]),
    "pattern with empty segment": (
        _policies(policy("p", "deny", ["doc..read"])),
        ["/policies/0/actions/0"],
    ),
    "pattern with space": (_policies(policy("p", "deny", ["doc read"])), ["/policies/0/actions/0"]),
    "pattern empty": (_policies(policy("p", "deny", ["doc.read", ""])), ["/policies/0/actions/1"]),
    "pattern with brackets": (
        _policies(policy("p", "deny", ["doc.[ab]"])),
        ["/policies/0/actions/0"],
    ),
    "unknown policy type": (_policies(policy("p", "maybe")), ["/policies/0/type"]),
    "policy type missing": (_policies({"policy_id": "p"}), ["/policies/0/type"]),
    "unknown condition key": (
        _policies(policy("p", "allow", conditions={"weekday": ["monday"]})),
        ["/policies/0/conditions/weekday"],
    ),
    "unknown risk tier in condition": (
        _policies(policy("p", "allow", conditions={"risk_tiers": ["low", "huge"]})),
        ["/policies/0/conditions/risk_tiers/1"],
    ),
    "rate_limit without max_calls": (
        _policies(policy("p", "rate_limit", parameters={"window_seconds": 60})),
        ["/policies/0/parameters/max_calls"],
    ),
    "rate_limit without window_seconds": (
        _policies(policy("p", "rate_limit", parameters={"max_calls": 2})),
        ["/policies/0/parameters/window_seconds"],
    ),
    "rate_limit without parameters": (
        _policies(policy("p", "rate_limit")),
        ["/policies/0/parameters/max_calls", "/policies/0/parameters/window_seconds"],
    ),
    "rate_limit with a bad scope": (
        _policies(
            policy(
                "p",
                "rate_limit",
                parameters={"max_calls": 1, "window_seconds": 1, "scope": "planet"},
            )
        ),
        ["/policies/0/parameters/scope"],
    ),
    "budget without limit": (
        _policies(policy("p", "budget", parameters={"costs": {"doc.read": 1}})),
        ["/policies/0/parameters/limit"],
    ),
    "budget cost pattern invalid": (
        _policies(policy("p", "budget", parameters={"limit": 3, "costs": {"Doc.*": 1}})),
        ["/policies/0/parameters/costs/Doc.*"],
    ),
    "parameters_schema unknown type": (
        _schema({"type": "objekt"}),
        ["/actions/0/parameters_schema"],
    ),
    "parameters_schema bad minimum": (
        _schema({"type": "integer", "minimum": "zero"}),
        ["/actions/0/parameters_schema"],
    ),
    "parameters_schema not an object": (_schema("object"), ["/actions/0/parameters_schema"]),
    "returns_schema invalid": (
        _set("actions", [action("a.b", returns_schema={"required": "name"})]),
        ["/actions/0/returns_schema"],
    ),
    "pack with neither files nor content": (
        _set("context_packs", [{"pack_id": "k", "name": "K"}]),
        ["/context_packs/0"],
    ),
    "pack priority out of range": (
        _set("context_packs", [{"pack_id": "k", "name": "K", "content": "x", "priority": 1001}]),
        ["/context_packs/0/priority"],
    ),
    "pack unknown condition": (
        _set(
            "context_packs",
            [{"pack_id": "k", "name": "K", "content": "x", "conditions": {"moon": "full"}}],
        ),
        ["/context_packs/0/conditions/moon"],
    ),
    "context file escapes with ..": (
        _set("context_packs", [{"pack_id": "k", "name": "K", "files": ["../outside.md"]}]),
        ["/context_packs/0/files/0"],
    ),
    "context file absolute": (
        _set("context_packs", [{"pack_id": "k", "name": "K", "files": ["/etc/hostname"]}]),
        ["/context_packs/0/files/0"],
    ),
    "context file missing": (
        _set("context_packs", [{"pack_id": "k", "name": "K", "files": ["context/none.md"]}]),
        ["/context_packs/0/files/0"],
    ),
    "unknown dependency": (
        _set("dependencies", {"org.cra.nowhere": "^1.0"}),
        ["/dependencies/org.cra.nowhere"],
    ),
    "dependency with a bad range": (
        _set("dependencies", {"org.cra.resources": "about one"}),
        ["/dependencies/org.cra.resources"],
    ),
    "actions not an array": (_set("actions", {"doc.read": {}}), ["/actions"]),
    "rate_limit max_calls zero": (
        _policies(policy("p", "rate_limit", parameters={"max_calls": 0, "window_seconds": 1})),
        ["/policies/0/parameters/max_calls"],
    ),
    "rate_limit window zero": (
        _policies(policy("p", "rate_limit", parameters={"max_calls": 1, "window_seconds": 0})),
        ["/policies/0/parameters/window_seconds"],
    ),
    "budget limit negative": (
        _policies(policy("p", "budget", parameters={"limit": -1})),
        ["/policies/0/parameters/limit"],
    ),
    "policy priority not whole": (
        _policies(policy("p", "allow", priority=1.5)),
        ["/policies/0/priority"],
    ),
    "unknown policy key": (
        _policies(policy("p", "allow", when="always")),
        ["/policies/0/when"],
    ),
    "ttl not whole": (_set("default_ttl_seconds", 60.5), ["/default_ttl_seconds"]),
}


@pytest.mark.parametrize("case", sorted(REJECTIONS), ids=str)
def test_rejection_with_path(rt: cra.Runtime, tmp_path: Path, case: str) -> None:
    mutate, paths = REJECTIONS[case]
    manifest = make_atlas(actions=BASE_ACTIONS, policies=[policy("allow-all", "allow")])
    mutate(manifest)
    err = rejected(rt, manifest, base_dir=tmp_path)
    assert fault_paths(err) == paths, err.errors


@pytest.mark.parametrize("name", ["missing-file", "escaping-file"])
def test_conformance_atlases_with_bad_context_files(rt: cra.Runtime, name: str) -> None:
    err = rejected(rt, atlas_path(name))
    assert fault_paths(err) == ["/context_packs/0/files/0"]
    word = "missing" if name == "missing-file" else "escapes"
    assert word in err.errors[0]["message"]


def test_context_file_symlink_pointing_outside_is_rejected(rt: cra.Runtime, tmp_path: Path) -> None:
    secret = tmp_path / "secret.md"
    secret.write_text("not for agents", encoding="utf-8")
    atlas_dir = tmp_path / "atlas"
    (atlas_dir / "context").mkdir(parents=True)
    os.symlink(secret, atlas_dir / "context" / "link.md")
    manifest = make_atlas(
        context_packs=[{"pack_id": "k", "name": "K", "files": ["context/link.md"]}]
    )
    (atlas_dir / "atlas.json").write_text(json.dumps(manifest), encoding="utf-8")
    err = rejected(rt, atlas_dir)
    assert fault_paths(err) == ["/context_packs/0/files/0"]
    assert "escapes" in err.errors[0]["message"]


def test_context_file_symlink_inside_the_directory_is_read(rt: cra.Runtime, tmp_path: Path) -> None:
    atlas_dir = tmp_path / "atlas"
    (atlas_dir / "context").mkdir(parents=True)
    (atlas_dir / "context" / "real.md").write_text("inside", encoding="utf-8")
    os.symlink(atlas_dir / "context" / "real.md", atlas_dir / "context" / "alias.md")
    manifest = make_atlas(
        context_packs=[{"pack_id": "k", "name": "K", "files": ["context/alias.md"]}]
    )
    (atlas_dir / "atlas.json").write_text(json.dumps(manifest), encoding="utf-8")
    rt.load_atlas(atlas_dir)
    sid = new_session(rt)
    assert [b.content for b in rt.resolve(request(rt, sid)).context_blocks] == ["inside"]


def test_unknown_keys_outside_policies_and_packs_are_accepted(rt: cra.Runtime) -> None:
    """Code's choice: the manifest and its actions may carry extra keys
    (adapters, notes); policies and context packs may not."""
    manifest = make_atlas(
        actions=[action("doc.read", tags=["x"])],
        policies=[policy("allow-all", "allow", description="all of it", name="All")],
        adapters={"openai": {}},
        homepage="https://example.org",
    )
    info = rt.load_atlas(manifest)
    assert info.actions == ["doc.read"]
    assert rt.atlas_manifest(info.atlas_id)["adapters"] == {"openai": {}}


def test_manifest_faults_and_dependency_faults_together(rt: cra.Runtime) -> None:
    rt.load_atlas(RESOURCES)
    manifest = make_atlas(
        "org.test.late",
        version="1.0",
        actions=[action("resource.get")],
        dependencies={"org.cra.nowhere": "^1"},
    )
    err = rejected(rt, manifest)
    assert fault_paths(err) == [
        "/version",
        "/dependencies/org.cra.nowhere",
        "/actions/0/action_id",
    ]


def test_dependency_out_of_range_and_satisfied(rt: cra.Runtime) -> None:
    rt.load_atlas(RESOURCES)  # version 2.1.0
    dependent = make_atlas("org.test.dependent", dependencies={"org.cra.resources": "^3"})
    err = rejected(rt, dependent)
    assert fault_paths(err) == ["/dependencies/org.cra.resources"]
    dependent["dependencies"] = {"org.cra.resources": ">=2.0, <3"}
    info = rt.load_atlas(dependent)
    assert info.dependencies == {"org.cra.resources": ">=2.0, <3"}


def test_all_faults_are_reported_at_once(rt: cra.Runtime) -> None:
    manifest = make_atlas(
        atlas_id="Not.An.Id",
        version="1.0",
        actions=[action("doc.read"), action("doc.read")],
        policies=[policy("p", "perhaps"), policy("q", "allow", conditions={"weekday": []})],
    )
    manifest["atlas_version"] = "0.9"
    err = rejected(rt, manifest)
    assert sorted(fault_paths(err)) == sorted(
        [
            "/atlas_version",
            "/atlas_id",
            "/version",
            "/actions/1/action_id",
            "/policies/0/type",
            "/policies/1/conditions/weekday",
        ]
    )
    assert len(err.errors) == 6
    assert "6 faults" in err.message


def test_five_different_faults_give_five_entries(rt: cra.Runtime) -> None:
    manifest = make_atlas(
        atlas_id="InvalidID",
        version="1.0",
        actions=[action("doc.read"), action("doc.read")],
        policies=[policy("p", "rate_limit", parameters={"max_calls": 2})],
        capabilities=[{"capability_id": "c", "name": "C", "actions": ["doc.print"]}],
    )
    err = rejected(rt, manifest)
    assert fault_paths(err) == [
        "/atlas_id",
        "/version",
        "/actions/1/action_id",
        "/capabilities/0/actions/0",
        "/policies/0/parameters/window_seconds",
    ]


# -- directory parts -----------------------------------------------------------


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


# -- big and deep input ----------------------------------------------------------

TEN_MB = 10 * 1024 * 1024


def _big_manifest(atlas_id: str) -> dict[str, Any]:
    return make_atlas(
        atlas_id,
        actions=[action(f"bulk.a{i}", description="d" * 200) for i in range(20_000)],
        policies=[policy("allow-all", "allow")],
        context_packs=[{"pack_id": "big", "name": "Big", "content": "x" * TEN_MB}],
    )


def test_ten_megabyte_manifest_as_dict_loads(rt: cra.Runtime) -> None:
    # The brief allows loading or a typed rejection; this implementation loads it.
    info = rt.load_atlas(_big_manifest("org.test.big"))
    assert len(info.actions) == 20_000
    sid = new_session(rt)
    res = rt.resolve(request(rt, sid, required_capabilities=None))
    assert len(res.allowed_action_ids) == 20_000
    block = res.context_blocks[0]
    assert len(block.content) == TEN_MB and block.token_estimate == TEN_MB // 4
    assert rt.verify(sid).valid


def test_ten_megabyte_manifest_file_loads(rt: cra.Runtime, tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_text(json.dumps(_big_manifest("org.test.bigfile")), encoding="utf-8")
    assert path.stat().st_size > TEN_MB
    assert len(rt.load_atlas(path).actions) == 20_000


def test_manifest_file_past_the_size_limit_is_rejected(rt: cra.Runtime, tmp_path: Path) -> None:
    path = tmp_path / "huge.json"
    with open(path, "wb") as f:
        f.truncate(65 * 1024 * 1024)  # sparse: nothing is written
    err = rejected(rt, path)
    assert "larger than" in err.message


def _deep_text(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_deeply_nested_manifest_file_is_a_typed_error(rt: cra.Runtime, tmp_path: Path) -> None:
    whole = tmp_path / "deep.json"
    whole.write_text(_deep_text(10_000), encoding="utf-8")
    rejected(rt, whole)
    inner = tmp_path / "deep-inner.json"
    text = json.dumps(make_atlas()).rstrip("}") + ', "description": ' + _deep_text(10_000) + "}"
    inner.write_text(text, encoding="utf-8")
    rejected(rt, inner)
    d = tmp_path / "dir"
    d.mkdir()
    (d / "atlas.json").write_text(json.dumps(make_atlas()), encoding="utf-8")
    (d / "policies").mkdir()
    (d / "policies" / "deep.json").write_text(_deep_text(10_000), encoding="utf-8")
    rejected(rt, d)


def _deep_dict(depth: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    cur = root
    for _ in range(depth):
        nxt: dict[str, Any] = {}
        cur["x"] = nxt
        cur = nxt
    return root


def test_deeply_nested_manifest_dict_is_a_typed_error(rt: cra.Runtime) -> None:
    manifest = make_atlas()
    manifest["description"] = _deep_dict(10_000)
    err = rejected(rt, manifest)
    assert err.path is not None and err.path.startswith("/description/x/x")
    deep_list: list[Any] = []
    cur = deep_list
    for _ in range(10_000):
        nxt: list[Any] = []
        cur.append(nxt)
        cur = nxt
    manifest["description"] = deep_list
    rejected(rt, manifest)


def test_self_referencing_manifest_dict_is_a_typed_error(rt: cra.Runtime) -> None:
    manifest = make_atlas()
    loop: dict[str, Any] = {}
    loop["again"] = loop
    manifest["description"] = loop
    rejected(rt, manifest)


def test_deep_but_acceptable_parameters_schema_loads(rt: cra.Runtime) -> None:
    schema: dict[str, Any] = {"type": "object"}
    for _ in range(300):
        schema = {"type": "object", "properties": {"a": schema}}
    info = rt.load_atlas(make_atlas(actions=[action("doc.deep", parameters_schema=schema)]))
    assert info.actions == ["doc.deep"]


@pytest.mark.parametrize(
    "value",
    [float("nan"), float("inf"), {1: "int key"}, {"a", "set"}, b"bytes", object()],
    ids=["nan", "inf", "int-key", "set", "bytes", "object"],
)
def test_manifest_dict_with_non_json_values_is_a_typed_error(rt: cra.Runtime, value: Any) -> None:
    manifest = make_atlas()
    manifest["description"] = value
    err = rejected(rt, manifest)
    assert err.path is not None and err.path.startswith("/description")
