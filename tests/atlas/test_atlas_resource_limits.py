"""Resource limits on atlases (issue 13, finding 5): the same limits on every
path an atlas comes by (dict, file, directory), checked before any schema is
compiled, `ATLAS_TOO_LARGE` at the offending place with the limit's name and
value; configurable per runtime; and the bound on what one resolve weighs
(`RESOLUTION_TOO_LARGE`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cra
import pytest
from cra.errors import CraError, ValidationError
from resolve_helpers import action, make_atlas, new_session, policy, request

DEFAULTS = {
    "max_json_depth": 100,
    "max_schema_depth": 64,
    "max_schema_cost": 1_000_000,
    "max_actions": 10_000,
    "max_policies": 10_000,
    "max_context_packs": 1_000,
    "max_manifest_bytes": 16 * 1024 * 1024,
    "max_context_bytes": 64 * 1024 * 1024,
    "max_candidate_actions": 1_000,
}


def too_large(rt: cra.Runtime, source: Any, code: str = "ATLAS_TOO_LARGE") -> CraError:
    """Loads `source`, which must be refused as too large, changing nothing."""
    before = [a.atlas_id for a in rt.atlases()]
    with pytest.raises(ValidationError) as info:
        rt.load_atlas(source)
    err = info.value
    assert err.code == code, err
    assert err.category == "validation" and err.http_status == 400
    assert err.path is not None
    assert [a.atlas_id for a in rt.atlases()] == before
    return err


def nested_not(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        schema = {"not": schema}
    return schema


def hostile_atlas(actions: int = 120, depth: int = 900) -> dict[str, Any]:
    """The atlas of the finding: 120 actions whose schemas nest `not` 900 deep."""
    return make_atlas(
        "org.test.hostile",
        actions=[
            action(f"hostile.a{i}", parameters_schema=nested_not(depth)) for i in range(actions)
        ],
    )


def set_limits(rt: cra.Runtime, **limits: int) -> None:
    # cra.Runtime(atlas_limits=...) passes these to the core.
    rt._core.set_atlas_limits(limits)


# -- the hostile atlas ------------------------------------------------------------------


def test_the_hostile_atlas_as_a_dict_is_refused_at_its_place(rt: cra.Runtime) -> None:
    err = too_large(rt, hostile_atlas())
    assert err.path == "/actions/0/parameters_schema" + "/not" * 64
    assert "max_schema_depth = 64" in err.message


def test_the_hostile_atlas_as_a_file_is_refused_at_its_place(
    rt: cra.Runtime, tmp_path: Path
) -> None:
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(hostile_atlas()), encoding="utf-8")
    err = too_large(rt, path)
    assert err.path == "/actions/0/parameters_schema" + "/not" * 64
    assert "max_schema_depth = 64" in err.message


def test_the_hostile_atlas_in_a_part_file_is_refused_at_its_merged_place(
    rt: cra.Runtime, tmp_path: Path
) -> None:
    (tmp_path / "atlas.json").write_text(
        json.dumps(make_atlas("org.test.hostile", actions=[action("ok.one")])), encoding="utf-8"
    )
    (tmp_path / "actions").mkdir()
    parts = hostile_atlas(actions=3)["actions"]
    (tmp_path / "actions" / "deep.json").write_text(json.dumps(parts), encoding="utf-8")
    err = too_large(rt, tmp_path)
    assert err.path == "/actions/1/parameters_schema" + "/not" * 64


def test_a_schema_within_the_text_parser_but_past_the_schema_depth_is_refused(
    rt: cra.Runtime, tmp_path: Path
) -> None:
    manifest = hostile_atlas(actions=2, depth=80)
    err = too_large(rt, manifest)
    assert err.path == "/actions/0/parameters_schema" + "/not" * 64
    path = tmp_path / "a.json"
    path.write_text(json.dumps(manifest), encoding="utf-8")
    assert too_large(rt, path).path == err.path


def test_a_deep_manifest_outside_any_schema_is_refused_by_json_depth(rt: cra.Runtime) -> None:
    deep: Any = "leaf"
    for _ in range(500):
        deep = [deep]
    err = too_large(rt, make_atlas(description=deep))
    assert err.path == "/description" + "/0" * 99
    assert "max_json_depth = 100" in err.message


def test_schemas_up_to_the_depth_load(rt: cra.Runtime) -> None:
    info = rt.load_atlas(hostile_atlas(actions=3, depth=63))
    assert len(info.actions) == 3


# -- counts and sizes -------------------------------------------------------------------


def test_each_limit_is_named_at_its_place(rt: cra.Runtime, tmp_path: Path) -> None:
    set_limits(
        rt,
        max_actions=3,
        max_policies=2,
        max_context_packs=1,
        max_schema_cost=31,
        max_context_bytes=100,
    )
    cases: list[tuple[dict[str, Any], str, str]] = [
        (make_atlas(actions=[action(f"a.b{i}") for i in range(4)]), "/actions", "max_actions"),
        (
            make_atlas(policies=[policy(f"p{i}", "allow") for i in range(3)]),
            "/policies",
            "max_policies",
        ),
        (
            make_atlas(context_packs=[{"pack_id": f"k{i}", "content": "x"} for i in range(2)]),
            "/context_packs",
            "max_context_packs",
        ),
        (
            # Each schema costs 1+2+3+4 (objects) + 5 (the string) = 15;
            # the third one's root makes 31, its first `not` 33.
            make_atlas(
                actions=[action(f"a.b{i}", parameters_schema=nested_not(3)) for i in range(3)]
            ),
            "/actions/2/parameters_schema/not",
            "max_schema_cost",
        ),
        (
            make_atlas(context_packs=[{"pack_id": "k", "content": "x" * 101}]),
            "/context_packs/0/content",
            "max_context_bytes",
        ),
    ]
    for manifest, path, limit in cases:
        err = too_large(rt, manifest)
        assert err.path == path, (limit, err)
        assert limit in err.message, err
    (tmp_path / "ctx.md").write_text("y" * 101, encoding="utf-8")
    pack = {"pack_id": "k", "files": ["ctx.md"]}
    (tmp_path / "atlas.json").write_text(json.dumps(make_atlas(context_packs=[pack])))
    err = too_large(rt, tmp_path / "atlas.json")
    assert err.path == "/context_packs/0/files/0" and "max_context_bytes" in err.message


def test_manifest_bytes_are_limited_on_every_path(rt: cra.Runtime, tmp_path: Path) -> None:
    set_limits(rt, max_manifest_bytes=2000)
    manifest = make_atlas(description="d" * 999, actions=[action("a.b", description="e" * 999)])
    err = too_large(rt, manifest)
    assert err.path == "" and "max_manifest_bytes = 2000" in err.message
    path = tmp_path / "m.json"
    path.write_text(json.dumps(manifest), encoding="utf-8")
    err = too_large(rt, path)
    assert "max_manifest_bytes = 2000" in err.message
    d = tmp_path / "dir"
    (d / "actions").mkdir(parents=True)
    (d / "atlas.json").write_text(json.dumps(make_atlas(description="d" * 999)))
    (d / "actions" / "a.json").write_text(json.dumps([action("a.b", description="e" * 999)]))
    err = too_large(rt, d)
    assert "max_manifest_bytes = 2000" in err.message


# -- configuration ----------------------------------------------------------------------


def test_the_limits_have_documented_defaults(rt: cra.Runtime) -> None:
    assert rt._core.atlas_limits() == DEFAULTS


def test_limits_can_be_raised_and_lowered(rt: cra.Runtime) -> None:
    set_limits(rt, max_schema_depth=100, max_json_depth=127)
    assert rt.load_atlas(hostile_atlas(actions=2, depth=90)).actions
    set_limits(rt, max_actions=1)
    too_large(rt, make_atlas("org.test.two", actions=[action("c.d"), action("c.e")]))
    assert rt._core.atlas_limits()["max_actions"] == 1


def test_an_unknown_limit_is_told_the_closest_name(rt: cra.Runtime) -> None:
    with pytest.raises(ValidationError) as info:
        set_limits(rt, max_action=5)
    assert info.value.code == "INVALID_OPTION"
    assert 'did you mean "max_actions"' in info.value.message
    assert info.value.path == "/atlas_limits/max_action"
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValidationError):
            rt._core.set_atlas_limits({"max_actions": bad})
    with pytest.raises(ValidationError):
        set_limits(rt, max_json_depth=128)
    # All or nothing.
    with pytest.raises(ValidationError):
        rt._core.set_atlas_limits({"max_actions": 5, "nope": 1})
    assert rt._core.atlas_limits() == DEFAULTS


# -- what one resolve weighs ------------------------------------------------------------


def _wide(rt: cra.Runtime, n: int) -> None:
    rt.load_atlas(
        make_atlas(
            "org.test.wide",
            actions=[action(f"wide.a{i}") for i in range(n)],
            policies=[policy("all", "allow")],
            capabilities=[
                {"capability_id": "half", "actions": [f"wide.a{i}" for i in range(n // 2)]}
            ],
        )
    )


def test_a_resolve_over_the_candidate_limit_is_refused_and_recorded(rt: cra.Runtime) -> None:
    _wide(rt, 1_001)
    sid = new_session(rt)
    before = len(rt.events(sid))
    with pytest.raises(ValidationError) as info:
        rt.resolve(request(rt, sid))
    err = info.value
    assert err.code == "RESOLUTION_TOO_LARGE" and err.http_status == 400
    assert err.path == "/atlas_ids"
    assert "max_candidate_actions = 1000" in err.message and "narrow" in err.message
    rt.flush()
    new = [e.event_type for e in rt.events(sid)[before:]]
    assert "error.occurred" in new
    assert "policy.evaluated" not in new and "carp.resolution.completed" not in new
    # Narrowed by capability, it is answered.
    res = rt.resolve(request(rt, sid, required_capabilities=["half"]))
    assert len(res.allowed_action_ids) == 500


def test_the_candidate_limit_names_the_capabilities_when_given(rt: cra.Runtime) -> None:
    _wide(rt, 20)
    set_limits(rt, max_candidate_actions=5)
    sid = new_session(rt)
    with pytest.raises(ValidationError) as info:
        rt.resolve(request(rt, sid, required_capabilities=["half"]))
    assert info.value.code == "RESOLUTION_TOO_LARGE"
    assert info.value.path == "/task/required_capabilities"
    assert "max_candidate_actions = 5" in info.value.message


def test_the_runtime_takes_its_limits_at_construction() -> None:
    rt = cra.Runtime(atlas_limits={"max_actions": 1})
    try:
        assert rt.atlas_limits == {**DEFAULTS, "max_actions": 1}
        too_large(rt, make_atlas("org.test.two", actions=[action("c.d"), action("c.e")]))
    finally:
        rt.close()
    with pytest.raises(ValidationError) as info:
        cra.Runtime(atlas_limits={"max_polices": 5})
    assert info.value.path == "/atlas_limits/max_polices"
    assert 'did you mean "max_policies"' in info.value.message
