"""Generated atlases (issue 16): every valid atlas hypothesis builds loads,
and the same atlas with one unknown key put anywhere a key is read (the
manifest, an action, capability, context pack or its conditions, a policy,
its conditions or parameters) is refused with a fault at that key's JSON
pointer. So an atlas that validates has no key the loader ignores.
"""

from __future__ import annotations

import copy
from typing import Any

import cra
from cra.errors import ValidationError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

Manifest = dict[str, Any]

#: Every key read anywhere in a manifest: an inserted key is none of them,
#: so it is unknown wherever it goes.
KNOWN = {
    "atlas_version", "atlas_id", "version", "name", "description", "authors", "license",
    "domains", "capabilities", "context_packs", "policies", "actions", "dependencies",
    "default_ttl_seconds", "action_id", "parameters_schema", "returns_schema", "risk_tier",
    "idempotent", "requires_confirmation", "executor", "redact", "trace_parameters",
    "trace_result", "capability_id", "pack_id", "files", "content", "content_type", "priority",
    "conditions", "keywords", "risk_tiers", "policy_id", "type", "parameters", "reason",
    "agent_ids", "max_calls", "window_seconds", "scope", "limit", "costs",
}  # fmt: skip

SEGMENT = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)
TIERS = st.sampled_from(["low", "medium", "high", "critical"])
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=5))


@st.composite
def atlases(draw: st.DrawFn) -> Manifest:
    ids = draw(
        st.lists(st.tuples(SEGMENT, SEGMENT), min_size=1, max_size=5, unique=True).map(
            lambda pairs: sorted({f"{a}.{b}" for a, b in pairs})
        )
    )
    actions: list[dict[str, Any]] = []
    for a in ids:
        item: dict[str, Any] = {"action_id": a, "name": a.title()}
        if draw(st.booleans()):
            item["risk_tier"] = draw(TIERS)
        if draw(st.booleans()):
            item["description"] = draw(st.text(max_size=10))
        if draw(st.booleans()):
            item["parameters_schema"] = {"type": "object", "properties": {"x": {"type": "string"}}}
        if draw(st.booleans()):
            item["trace_parameters"] = "redacted"
            item["redact"] = ["/x"]
        actions.append(item)

    policies: list[dict[str, Any]] = []
    for i in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["deny", "require_approval", "rate_limit", "budget", "allow"]))
        pol: dict[str, Any] = {"policy_id": f"p{i}", "type": kind}
        pats = draw(st.lists(st.sampled_from(ids), max_size=2))
        if pats or draw(st.booleans()):
            pol["actions"] = pats
        pol["conditions"] = {"risk_tiers": draw(st.lists(TIERS, max_size=2))}
        if kind == "rate_limit":
            pol["parameters"] = {"max_calls": draw(st.integers(1, 9)), "window_seconds": 60}
        elif kind == "budget":
            pol["parameters"] = {"limit": 10, "costs": {draw(st.sampled_from(ids)): 1}}
        elif kind == "deny":
            pol["reason"] = "no"
            pol["parameters"] = {}
        else:
            pol["parameters"] = {}
        policies.append(pol)

    packs = [
        {"pack_id": f"k{i}", "content": "text", "conditions": {"keywords": ["x"]}}
        for i in range(draw(st.integers(0, 2)))
    ]
    caps = [{"capability_id": "c0", "actions": draw(st.lists(st.sampled_from(ids), max_size=2))}]
    return {
        "atlas_version": "1.0",
        "atlas_id": "org.test.generated",
        "version": "1.0.0",
        "name": "Generated",
        "actions": actions,
        "policies": policies,
        "context_packs": packs,
        "capabilities": caps,
    }


def objects(m: Manifest) -> list[tuple[str, dict[str, Any]]]:
    """Every object of `m` whose keys the loader reads, with its pointer."""
    out: list[tuple[str, dict[str, Any]]] = [("", m)]
    for list_key in ("actions", "capabilities", "context_packs", "policies"):
        for i, item in enumerate(m[list_key]):
            out.append((f"/{list_key}/{i}", item))
            for sub in ("conditions", "parameters"):
                # require_approval passes its parameters through (atlas.md §5).
                if sub in item and item.get("type") != "require_approval":
                    out.append((f"/{list_key}/{i}/{sub}", item[sub]))
    return out


def escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


PROPERTY = settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY
@given(atlases())
def test_generated_atlases_load(m: Manifest) -> None:
    with cra.Runtime() as rt:
        rt.load_atlas(m)


@PROPERTY
@given(
    atlases(),
    st.data(),
    st.text(min_size=1, max_size=12).filter(lambda k: k not in KNOWN),
    SCALAR,
)
def test_any_unknown_key_anywhere_is_refused_at_its_pointer(
    m: Manifest, data: st.DataObject, key: str, value: Any
) -> None:
    places = objects(m)
    where, target = data.draw(st.sampled_from(places))
    bad = copy.deepcopy(m)
    # The same object in the copy: walk the pointer.
    node: Any = bad
    for part in [p for p in where.split("/") if p]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    assert node == target
    node[key] = value
    with cra.Runtime() as rt:
        try:
            rt.load_atlas(bad)
        except ValidationError as e:
            paths = [f["path"] for f in e.errors]
            assert paths == [f"{where}/{escape(key)}"], e.errors
            assert e.code == "ATLAS_INVALID"
        else:
            raise AssertionError(f"{where}/{key} was accepted")
