"""Atlas/1.0 rejections (§2): every rejection with the JSON pointer of its
fault, bad context files and symlinks, accepted unknown keys, dependency
faults, and all faults of one manifest reported at once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import cra
import pytest
from resolve_helpers import (
    RESOURCES,
    action,
    atlas_path,
    fault_paths,
    make_atlas,
    new_session,
    policy,
    rejected,
    request,
)

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


def test_unknown_keys_are_refused_everywhere(rt: cra.Runtime) -> None:
    """Issue 16: nothing is accepted and ignored, annotations included
    (tests/atlas/test_atlas_strict_keys.py has one test per place)."""
    manifest = make_atlas(
        actions=[action("doc.read", tags=["x"])],
        policies=[policy("allow-all", "allow", description="all of it", name="All")],
        adapters={"openai": {}},
        homepage="https://example.org",
    )
    err = rejected(rt, manifest)
    assert sorted(fault_paths(err)) == ["/actions/0/tags", "/adapters", "/homepage"]


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
