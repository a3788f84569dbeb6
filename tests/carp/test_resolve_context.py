"""Context packs of resolve: block order by priority and ties, the keyword,
risk tier and capability conditions, packs of non-candidate atlases, token
estimates and content types.
"""

from __future__ import annotations

from typing import Any

import cra
import pytest
from resolve_helpers import (
    PRIORITIES,
    RESOURCES,
    brief,
    make_atlas,
    new_session,
    request,
)


def inline_atlas(atlas_id: str, packs: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    return make_atlas(atlas_id, context_packs=packs, **kw)


def pack(pack_id: str, content: str, priority: int | None = None, **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"pack_id": pack_id, "name": pack_id.title(), "content": content}
    if priority is not None:
        out["priority"] = priority
    out.update(kw)
    return out


def block_ids(res: cra.CARPResolution) -> list[str]:
    return [b.block_id for b in res.context_blocks]


def test_context_block_order_by_priority(rt: cra.Runtime) -> None:
    rt.load_atlas(PRIORITIES)
    sid = new_session(rt)
    res = rt.resolve(request(rt, sid, "Take notes"))
    assert [
        (b.block_id, b.priority, b.content_type, b.token_estimate) for b in res.context_blocks
    ] == [
        ("hundred/context/hundred.md", 100, "text/markdown", 4),
        ("fifty/context/fifty.json", 50, "application/json", 4),
        ("ten/context/ten.md", 10, "text/markdown", 2),
    ]


def test_context_ties_keep_declaration_order_then_atlas_order(rt: cra.Runtime) -> None:
    rt.load_atlas(
        inline_atlas(
            "org.test.one", [pack("b", "1b", 5), pack("a", "1a", 5), pack("top", "1top", 9)]
        )
    )
    rt.load_atlas(inline_atlas("org.test.two", [pack("z", "2z", 5), pack("unset", "2unset")]))
    sid = new_session(rt)
    res = rt.resolve(request(rt, sid))
    assert [(b.source, b.block_id) for b in res.context_blocks] == [
        ("org.test.one", "top"),
        ("org.test.one", "b"),
        ("org.test.one", "a"),
        ("org.test.two", "z"),
        ("org.test.two", "unset"),
    ]
    assert res.context_blocks[-1].priority == 0


@pytest.mark.parametrize(
    "goal, hints, expected",
    [
        ("Manage things", None, ["overview/context/overview.md"]),
        (
            "Please REMOVE the old resource",
            None,
            ["overview/context/overview.md", "removal/context/removal.md"],
        ),
        ("delete it", None, ["overview/context/overview.md", "removal/context/removal.md"]),
        (
            "Clean up",
            ["DeLeTe flow"],
            ["overview/context/overview.md", "removal/context/removal.md"],
        ),
        ("Clean up", ["archive", "nothing"], ["overview/context/overview.md"]),
        # Keywords occur as substrings (code's choice: "occurs" is a substring test).
        ("Undeleted items", None, ["overview/context/overview.md", "removal/context/removal.md"]),
    ],
)
def test_keyword_condition(
    rt: cra.Runtime, goal: str, hints: list[str] | None, expected: list[str]
) -> None:
    rt.load_atlas(RESOURCES)
    sid = new_session(rt)
    assert block_ids(rt.resolve(request(rt, sid, goal, context_hints=hints))) == expected


def test_keywords_are_case_insensitive_on_both_sides(rt: cra.Runtime) -> None:
    rt.load_atlas(
        inline_atlas("org.test.kw", [pack("k", "x", conditions={"keywords": ["Refund"]})])
    )
    sid = new_session(rt)
    assert block_ids(rt.resolve(request(rt, sid, "issue a REFUND"))) == ["k"]
    assert block_ids(rt.resolve(request(rt, sid, "Other", context_hints=["refund"]))) == ["k"]
    assert block_ids(rt.resolve(request(rt, sid, "Other"))) == []


@pytest.mark.parametrize(
    "tier, expected",
    [
        (None, ["hundred/context/hundred.md", "fifty/context/fifty.json", "ten/context/ten.md"]),
        ("high", ["hundred/context/hundred.md", "fifty/context/fifty.json", "ten/context/ten.md"]),
        (
            "critical",
            [
                "risky",
                "hundred/context/hundred.md",
                "fifty/context/fifty.json",
                "ten/context/ten.md",
            ],
        ),
    ],
)
def test_risk_tier_condition(rt: cra.Runtime, tier: str | None, expected: list[str]) -> None:
    rt.load_atlas(PRIORITIES)
    sid = new_session(rt)
    assert block_ids(rt.resolve(request(rt, sid, risk_tier=tier))) == expected


@pytest.mark.parametrize(
    "caps, has_inline",
    [(None, False), (["read"], False), (["write"], True), (["read", "write"], True)],
)
def test_capabilities_condition(rt: cra.Runtime, caps: list[str] | None, has_inline: bool) -> None:
    rt.load_atlas(PRIORITIES)
    sid = new_session(rt)
    ids = block_ids(rt.resolve(request(rt, sid, required_capabilities=caps)))
    assert ("inline" in ids) is has_inline
    if has_inline:
        # Same priority as "fifty", declared after it.
        assert ids.index("inline") == ids.index("fifty/context/fifty.json") + 1


def test_all_pack_conditions_must_hold(rt: cra.Runtime) -> None:
    rt.load_atlas(
        inline_atlas(
            "org.test.both",
            [pack("k", "x", conditions={"keywords": ["pay"], "risk_tiers": ["high"]})],
        )
    )
    sid = new_session(rt)
    assert block_ids(rt.resolve(request(rt, sid, "pay", risk_tier="high"))) == ["k"]
    assert block_ids(rt.resolve(request(rt, sid, "pay", risk_tier="low"))) == []
    assert block_ids(rt.resolve(request(rt, sid, "look", risk_tier="high"))) == []


def test_a_pack_with_an_empty_risk_tiers_is_never_selected(rt: cra.Runtime) -> None:
    rt.load_atlas(
        inline_atlas(
            "org.test.none",
            [pack("never", "x", conditions={"risk_tiers": []}), pack("always", "y")],
        )
    )
    sid = new_session(rt)
    for tier in ("low", "medium", "high", "critical"):
        assert block_ids(rt.resolve(request(rt, sid, "pay", risk_tier=tier))) == ["always"]


def test_packs_of_non_candidate_atlases_are_left_out(rt: cra.Runtime) -> None:
    rt.load_atlas(RESOURCES)
    rt.load_atlas(PRIORITIES)
    sid = new_session(rt)
    res = rt.resolve(request(rt, sid, atlas_ids=["org.cra.resources"]))
    assert {b.source for b in res.context_blocks} == {"org.cra.resources"}
    res = rt.resolve(request(rt, sid))
    assert {b.source for b in res.context_blocks} == {"org.cra.resources", "org.cra.priorities"}


@pytest.mark.parametrize(
    "content, tokens",
    [("", 0), ("abcd", 1), ("abcde", 2), ("é" * 3, 2), ("€", 1), ("😀" * 2, 2), ("x" * 401, 101)],
)
def test_token_estimate_is_utf8_bytes_over_four_rounded_up(
    rt: cra.Runtime, content: str, tokens: int
) -> None:
    rt.load_atlas(inline_atlas("org.test.tok", [pack("k", content)]))
    sid = new_session(rt)
    b = rt.resolve(request(rt, sid)).context_blocks[0]
    assert (b.content, b.token_estimate) == (content, tokens)
    injected = next(e for e in brief(rt, sid) if e["event_type"] == "context.injected")
    assert injected["payload"]["token_count"] == tokens


def test_content_types(rt: cra.Runtime, tmp_path: Any) -> None:
    for name in ("a.md", "b.json", "c.txt", "d.md"):
        (tmp_path / name).write_text(name, encoding="utf-8")
    rt.load_atlas(
        inline_atlas(
            "org.test.types",
            [
                {
                    "pack_id": "files",
                    "name": "F",
                    "files": ["a.md", "b.json", "c.txt"],
                    "priority": 9,
                },
                {
                    "pack_id": "typed",
                    "name": "T",
                    "files": ["d.md"],
                    "content_type": "text/x-custom",
                    "priority": 8,
                },
                pack("inline", "plain words", 7),
                pack("inline-json", "{}", 6, content_type="application/json"),
            ],
        ),
        base_dir=tmp_path,
    )
    sid = new_session(rt)
    got = [(b.block_id, b.content_type) for b in rt.resolve(request(rt, sid)).context_blocks]
    assert got == [
        ("files/a.md", "text/markdown"),
        ("files/b.json", "application/json"),
        ("files/c.txt", "text/plain"),  # code's choice for other extensions
        ("typed/d.md", "text/x-custom"),
        ("inline", "text/markdown"),  # code's choice for inline content
        ("inline-json", "application/json"),
    ]
