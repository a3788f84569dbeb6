"""YAML atlases (issue 16): `atlas.yaml`/`atlas.yml` and `policies/*.yaml`
or `actions/*.yml` part files load as their JSON would, under the same
validation, and each fault in a YAML file names the file, its line and the
JSON pointer. YAML's traps are refused rather than read silently: duplicate
keys, keys that are not strings, merge keys, leading-zero numbers, more than
one document, and aliases that expand past `max_manifest_bytes`.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import cra
import pytest
from cra.errors import ValidationError
from resolve_helpers import decided_by, fault_paths, new_session, rejected, request

EXAMPLE = Path(cra.__file__).parent / "examples" / "support"

_WORDS = {"true", "false", "null", "~"}


def _scalar(v: Any) -> str:
    if isinstance(v, str):
        # Plain where YAML 1.2 reads it back as this string (`1.0.0` and
        # `Apache-2.0` included), quoted otherwise.
        plain = re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", v)
        number = re.fullmatch(r"-?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?", v)
        if plain and not number and v.lower() not in _WORDS:
            return v
    return json.dumps(v)


def _emit(v: Any, pad: str, out: list[str]) -> None:
    """Block-style YAML of a JSON value (a small writer of our own)."""
    if isinstance(v, dict):
        for k, item in v.items():
            if isinstance(item, (dict, list)) and item:
                out.append(f"{pad}{_scalar(k)}:")
                _emit(item, pad + "  ", out)
            else:
                out.append(f"{pad}{_scalar(k)}: {_inline(item)}")
    else:
        for item in v:
            if isinstance(item, (dict, list)) and item:
                start = len(out)
                _emit(item, pad + "  ", out)
                out[start] = f"{pad}- {out[start][len(pad) + 2 :]}"
            else:
                out.append(f"{pad}- {_inline(item)}")


def _inline(v: Any) -> str:
    if isinstance(v, dict):
        return "{}"
    if isinstance(v, list):
        return "[]"
    return _scalar(v)


def to_yaml(v: Any) -> str:
    out: list[str] = ["# written by the test"]
    _emit(v, "", out)
    return "\n".join(out) + "\n"


def _yaml_copy(tmp_path: Path, manifest: dict[str, Any] | None = None) -> Path:
    """The example atlas with its manifest and policies as YAML."""
    d = tmp_path / "support"
    shutil.copytree(EXAMPLE / "context", d / "context")
    if manifest is None:
        manifest = json.loads((EXAMPLE / "atlas.json").read_text(encoding="utf-8"))
    (d / "atlas.yaml").write_text(to_yaml(manifest), encoding="utf-8")
    (d / "policies").mkdir()
    policies = json.loads((EXAMPLE / "policies" / "support.json").read_text(encoding="utf-8"))
    (d / "policies" / "support.yml").write_text(to_yaml(policies), encoding="utf-8")
    return d


def _resolution(rt: cra.Runtime) -> tuple[Any, ...]:
    sid = new_session(rt)
    res = rt.resolve(request(rt, sid, goal="A refund for my order"))
    doc = res._json()
    return (res.allowed_action_ids, decided_by(res), doc.get("context_blocks"))


def _line_of(text: str, needle: str, nth: int = 1) -> int:
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if needle in line]
    return hits[nth - 1]


def test_example_atlas_as_yaml_loads_like_json(tmp_path: Path) -> None:
    d = _yaml_copy(tmp_path)
    assert "version: 1.0.0\n" in (d / "atlas.yaml").read_text(encoding="utf-8")
    with cra.Runtime() as a, cra.Runtime() as b:
        from_json = a.load_atlas(EXAMPLE)
        from_yaml = b.load_atlas(d)
        assert from_yaml.atlas_id == from_json.atlas_id
        assert from_yaml.actions == from_json.actions
        assert from_yaml.policies == from_json.policies
        manifest = b.atlas_manifest(from_yaml.atlas_id)
        assert manifest == a.atlas_manifest(from_json.atlas_id)
        assert manifest["version"] == "1.0.0" and manifest["atlas_version"] == "1.0"
        assert _resolution(b) == _resolution(a)


def test_a_yaml_manifest_file_loads(rt: cra.Runtime, tmp_path: Path) -> None:
    d = _yaml_copy(tmp_path)
    (d / "atlas.yaml").rename(d / "atlas.yml")
    info = rt.load_atlas(d / "atlas.yml")
    # A manifest file alone: its directory's policies/ are not read.
    assert info.policies == []
    assert rt.load_atlas(d, replace=True).policies != []


def test_a_fault_names_the_file_the_line_and_the_pointer(rt: cra.Runtime, tmp_path: Path) -> None:
    manifest = json.loads((EXAMPLE / "atlas.json").read_text(encoding="utf-8"))
    manifest["actions"][1]["risk_tier"] = 5
    d = _yaml_copy(tmp_path, manifest)
    text = (d / "atlas.yaml").read_text(encoding="utf-8")
    line = _line_of(text, "risk_tier: 5")
    assert line == _line_of(text, "risk_tier:", nth=2)
    err = rejected(rt, d)
    assert fault_paths(err) == ["/actions/1/risk_tier"]
    message = err.errors[0]["message"]
    assert f"atlas.yaml, line {line}, at /actions/1/risk_tier: " in message
    assert str(d / "atlas.yaml") in message


def test_a_missing_member_is_named_at_its_parent_line(rt: cra.Runtime, tmp_path: Path) -> None:
    manifest = json.loads((EXAMPLE / "atlas.json").read_text(encoding="utf-8"))
    del manifest["actions"][2]["name"]
    d = _yaml_copy(tmp_path, manifest)
    text = (d / "atlas.yaml").read_text(encoding="utf-8")
    err = rejected(rt, d)
    assert fault_paths(err) == ["/actions/2/name"]
    line = _line_of(text, "- action_id: ticket.reply")
    assert f"atlas.yaml, line {line}, at /actions/2/name" in err.errors[0]["message"]


def test_a_fault_in_a_policies_file_names_that_file(rt: cra.Runtime, tmp_path: Path) -> None:
    d = _yaml_copy(tmp_path)
    (d / "policies" / "x.yaml").write_text(
        "- policy_id: extra\n  type: allow\n  actions: [ticket.lookup]\n"
        "- policy_id: odd\n"
        "  type: sometimes\n",
        encoding="utf-8",
    )
    err = rejected(rt, d)
    # Five policies in support.yml first: x.yaml's second is the seventh.
    assert fault_paths(err) == ["/policies/6/type"]
    assert "policies/x.yaml, line 5, at /policies/6/type: " in err.errors[0]["message"]


def test_json_and_yaml_parts_merge_in_name_order(rt: cra.Runtime, tmp_path: Path) -> None:
    d = _yaml_copy(tmp_path)
    (d / "policies" / "a.json").write_text(
        json.dumps([{"policy_id": "first", "type": "allow", "actions": ["ticket.lookup"]}]),
        encoding="utf-8",
    )
    info = rt.load_atlas(d)
    assert info.policies[0] == "first"


def test_a_duplicate_key_is_refused(rt: cra.Runtime, tmp_path: Path) -> None:
    d = _yaml_copy(tmp_path)
    (d / "policies" / "z-dup.yaml").write_text(
        "- policy_id: a\n  type: allow\n  type: deny\n", encoding="utf-8"
    )
    err = rejected(rt, d)
    assert fault_paths(err) == ["/policies/5/type"]
    assert 'policies/z-dup.yaml, line 3, at /policies/5/type: duplicate key "type"' in err.message


def test_a_syntax_error_names_its_line(rt: cra.Runtime, tmp_path: Path) -> None:
    d = _yaml_copy(tmp_path)
    (d / "policies" / "bad.yaml").write_text(
        "- policy_id: a\n  type: allow\n  actions: [ticket.lookup\n", encoding="utf-8"
    )
    err = rejected(rt, d)
    assert "policies/bad.yaml, line " in err.message and "not valid YAML" in err.message


def test_both_atlas_json_and_atlas_yaml_is_ambiguous(rt: cra.Runtime, tmp_path: Path) -> None:
    d = _yaml_copy(tmp_path)
    shutil.copy(EXAMPLE / "atlas.json", d / "atlas.json")
    err = rejected(rt, d)
    assert fault_paths(err) == [""]
    assert "atlas.json and atlas.yaml" in err.message and "ambiguous" in err.message


def test_billion_laughs_is_refused_within_the_limit(rt: cra.Runtime, tmp_path: Path) -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        refs = ",".join([f"*a{i - 1}"] * 10)
        lines.append(f"a{i}: &a{i} [{refs}]")
    path = tmp_path / "laughs.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ValidationError) as info:
        rt.load_atlas(path)
    err = info.value
    assert err.code == "ATLAS_TOO_LARGE"
    assert "max_manifest_bytes" in err.message and "laughs.yaml, line " in err.message


@pytest.mark.parametrize(
    ("text", "path", "words"),
    [
        ("atlas_id: a\n1: one\n", "", "is not a string"),
        ("atlas_id: a\n? [x]\n: one\n", "", "must be a string"),
        ("base: &b {x: 1}\nother:\n  <<: *b\n", "/other", "merge keys"),
        ("default_ttl_seconds: 0600\n", "/default_ttl_seconds", "leading zero"),
        ("default_ttl_seconds: .inf\n", "/default_ttl_seconds", "not a number"),
        ("atlas_id: !!binary aGVsbG8=\n", "/atlas_id", "tag"),
        ("atlas_id: a\n---\natlas_id: b\n", "", "more than one YAML document"),
        ("", "", "no YAML document"),
    ],
)
def test_yaml_traps_are_refused(
    rt: cra.Runtime, tmp_path: Path, text: str, path: str, words: str
) -> None:
    f = tmp_path / "atlas.yaml"
    f.write_text(text, encoding="utf-8")
    err = rejected(rt, f)
    assert fault_paths(err) == [path]
    assert words in err.message and "atlas.yaml, line " in err.message


def test_yaml_1_1_words_stay_strings(rt: cra.Runtime, tmp_path: Path) -> None:
    manifest = json.loads((EXAMPLE / "atlas.json").read_text(encoding="utf-8"))
    manifest["name"] = "yes"
    words = ["on", "off", "no", "y", "2024-01-01", "1_000", "1:20", "0.1.2"]
    manifest["authors"] = words
    d = _yaml_copy(tmp_path, manifest)
    text = (d / "atlas.yaml").read_text(encoding="utf-8")
    assert "name: yes\n" in text and "- 1_000\n" in text
    info = rt.load_atlas(d)
    loaded = rt.atlas_manifest(info.atlas_id)
    assert loaded["name"] == "yes"
    assert loaded["authors"] == words


def test_a_boolean_written_as_yes_is_a_fault_not_true(rt: cra.Runtime, tmp_path: Path) -> None:
    d = _yaml_copy(tmp_path)
    text = (d / "atlas.yaml").read_text(encoding="utf-8")
    line = _line_of(text, "idempotent: true")
    text = text.replace("idempotent: true", "idempotent: yes", 1)
    (d / "atlas.yaml").write_text(text, encoding="utf-8")
    err = rejected(rt, d)
    assert fault_paths(err) == ["/actions/0/idempotent"]
    assert f"atlas.yaml, line {line}, at /actions/0/idempotent" in err.message
