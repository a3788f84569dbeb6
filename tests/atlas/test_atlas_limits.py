"""Big and deep Atlas/1.0 input: ten-megabyte manifests as dict and file
(under raised limits), the size limit, deeply nested and self-referencing
manifests as typed errors, and manifests with values that are not JSON.
The limits themselves: test_atlas_resource_limits.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cra
import pytest
from cra.errors import ValidationError
from resolve_helpers import (
    action,
    make_atlas,
    new_session,
    policy,
    rejected,
    request,
)

TEN_MB = 10 * 1024 * 1024

#: 20,000 actions, all weighed by one resolve: past the default limits.
BIG_LIMITS = {
    "max_actions": 20_000,
    "max_candidate_actions": 20_000,
    "max_manifest_bytes": 32 * 1024 * 1024,
}


def too_large(rt: cra.Runtime, source: Any) -> ValidationError:
    before = [a.atlas_id for a in rt.atlases()]
    with pytest.raises(ValidationError) as info:
        rt.load_atlas(source)
    assert info.value.code == "ATLAS_TOO_LARGE" and info.value.http_status == 400
    assert [a.atlas_id for a in rt.atlases()] == before
    return info.value


def _big_manifest(atlas_id: str) -> dict[str, Any]:
    return make_atlas(
        atlas_id,
        actions=[action(f"bulk.a{i}", description="d" * 200) for i in range(20_000)],
        policies=[policy("allow-all", "allow")],
        context_packs=[{"pack_id": "big", "name": "Big", "content": "x" * TEN_MB}],
    )


def test_ten_megabyte_manifest_as_dict_loads(rt: cra.Runtime) -> None:
    # The brief allows loading or a typed rejection; this implementation loads it.
    rt._core.set_atlas_limits(BIG_LIMITS)
    info = rt.load_atlas(_big_manifest("org.test.big"))
    assert len(info.actions) == 20_000
    sid = new_session(rt)
    res = rt.resolve(request(rt, sid, required_capabilities=None))
    assert len(res.allowed_action_ids) == 20_000
    block = res.context_blocks[0]
    assert len(block.content) == TEN_MB and block.token_estimate == TEN_MB // 4
    assert rt.verify(sid).valid


def test_ten_megabyte_manifest_file_loads(rt: cra.Runtime, tmp_path: Path) -> None:
    rt._core.set_atlas_limits(BIG_LIMITS)
    path = tmp_path / "big.json"
    path.write_text(json.dumps(_big_manifest("org.test.bigfile")), encoding="utf-8")
    assert path.stat().st_size > TEN_MB
    assert len(rt.load_atlas(path).actions) == 20_000


def test_manifest_file_past_the_size_limit_is_rejected(rt: cra.Runtime, tmp_path: Path) -> None:
    path = tmp_path / "huge.json"
    with open(path, "wb") as f:
        f.truncate(17 * 1024 * 1024)  # sparse: nothing is written
    err = too_large(rt, path)
    assert "larger than" in err.message and "max_manifest_bytes" in err.message


def _deep_text(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_deeply_nested_manifest_file_is_a_typed_error(rt: cra.Runtime, tmp_path: Path) -> None:
    whole = tmp_path / "deep.json"
    whole.write_text(_deep_text(10_000), encoding="utf-8")
    assert too_large(rt, whole).path == "/0" * 100
    inner = tmp_path / "deep-inner.json"
    text = json.dumps(make_atlas()).rstrip("}") + ', "description": ' + _deep_text(10_000) + "}"
    inner.write_text(text, encoding="utf-8")
    assert too_large(rt, inner).path == "/description" + "/0" * 99
    d = tmp_path / "dir"
    d.mkdir()
    (d / "atlas.json").write_text(json.dumps(make_atlas()), encoding="utf-8")
    (d / "policies").mkdir()
    (d / "policies" / "deep.json").write_text(_deep_text(10_000), encoding="utf-8")
    assert too_large(rt, d).path == "/policies" + "/0" * 99


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
    err = too_large(rt, manifest)
    assert err.path == "/description" + "/x" * 99
    deep_list: list[Any] = []
    cur = deep_list
    for _ in range(10_000):
        nxt: list[Any] = []
        cur.append(nxt)
        cur = nxt
    manifest["description"] = deep_list
    too_large(rt, manifest)


def test_self_referencing_manifest_dict_is_a_typed_error(rt: cra.Runtime) -> None:
    manifest = make_atlas()
    loop: dict[str, Any] = {}
    loop["again"] = loop
    manifest["description"] = loop
    too_large(rt, manifest)


def test_deep_but_acceptable_parameters_schema_loads(rt: cra.Runtime) -> None:
    schema: dict[str, Any] = {"type": "object"}
    for _ in range(31):  # 63 levels of JSON: within max_schema_depth
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
