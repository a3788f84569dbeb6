"""pytest helpers for an atlas's policies (`specs/atlas-tools.md` §4).

Each helper resolves one goal and raises `AssertionError` with what was
expected against what came back; on success it returns the resolution.
The first argument is a `cra.Runtime` with the atlases loaded (a new
session is made on it) or an atlas source (a manifest path, an atlas
directory or a dict), loaded into a fresh runtime. Keyword arguments
shape the request: `risk_tier`, `capabilities`, `agent_id`, `atlas_ids`,
`context_hints`.

    from cra.testing import assert_allowed, assert_denied

    def test_refunds_need_a_human():
        assert_requires_approval("atlas/", "Refund order 42", "billing.refund")
        assert_denied("atlas/", "Wipe it", "db.drop", policy_id="no-drops")
"""

from __future__ import annotations

import os
from typing import Any, List, Optional, Sequence, Union

from .atlas_tests import (
    AtlasSource,
    CaseResult,
    Mismatch,
    check,
    load_cases,
    resolve_case,
    run_case,
)
from .carp import CARPResolution
from .runtime import Runtime

__all__ = [
    "assert_allowed",
    "assert_context",
    "assert_decision",
    "assert_denied",
    "assert_requires_approval",
    "resolve",
    "run_cases",
]

RuntimeOrAtlas = Union[Runtime, AtlasSource]
_REQUEST_KW = ("risk_tier", "capabilities", "agent_id", "atlas_ids", "context_hints")


def resolve(rt_or_atlas: RuntimeOrAtlas, goal: str, **kw: Any) -> CARPResolution:
    """Resolves `goal` (request parts from `kw`) in a new session."""
    unknown = sorted(set(kw) - set(_REQUEST_KW))
    if unknown:
        raise TypeError(f"unknown request argument(s) {unknown}; known: {list(_REQUEST_KW)}")
    request = {"goal": goal, **{k: v for k, v in kw.items() if v is not None}}
    if isinstance(rt_or_atlas, Runtime):
        return resolve_case(rt_or_atlas, request)
    with Runtime() as rt:
        rt.load_atlas(rt_or_atlas)
        return resolve_case(rt, request)


def _expect(
    rt_or_atlas: RuntimeOrAtlas, goal: str, expect: dict[str, Any], kw: dict[str, Any]
) -> CARPResolution:
    res = resolve(rt_or_atlas, goal, **kw)
    _raise(goal, check(res, expect), res)
    return res


def _raise(goal: str, mismatches: List[Mismatch], res: CARPResolution) -> None:
    if mismatches:
        lines = [f"for goal {goal!r}:"] + [f"  {m}" for m in mismatches]
        lines.append(
            f"  (decision {res.decision.type!r}; allowed {res.allowed_action_ids}; "
            f"denied {res.denied_action_ids})"
        )
        raise AssertionError("\n".join(lines))


def assert_allowed(
    rt_or_atlas: RuntimeOrAtlas, goal: str, action_id: str, **kw: Any
) -> CARPResolution:
    """The action is allowed outright (no approval needed)."""
    return _expect(rt_or_atlas, goal, {"allowed": [action_id]}, kw)


def assert_denied(
    rt_or_atlas: RuntimeOrAtlas,
    goal: str,
    action_id: str,
    policy_id: Optional[str] = None,
    **kw: Any,
) -> CARPResolution:
    """The action is denied (by `policy_id` when given: a policy's id,
    `default-deny`, or the id of the limit that is spent)."""
    return _expect(rt_or_atlas, goal, {"denied": [(action_id, policy_id)]}, kw)


def assert_requires_approval(
    rt_or_atlas: RuntimeOrAtlas, goal: str, action_id: str, **kw: Any
) -> CARPResolution:
    """The action is listed as allowed but waits for a human approval."""
    return _expect(rt_or_atlas, goal, {"requires_approval": [action_id]}, kw)


def assert_context(
    rt_or_atlas: RuntimeOrAtlas, goal: str, block_ids: Sequence[str], **kw: Any
) -> CARPResolution:
    """The context blocks are exactly `block_ids`, in this order."""
    return _expect(rt_or_atlas, goal, {"context": list(block_ids)}, kw)


def assert_decision(
    rt_or_atlas: RuntimeOrAtlas, goal: str, decision: str, **kw: Any
) -> CARPResolution:
    """The decision type: `allow`, `partial`, `requires_approval` or `deny`."""
    return _expect(rt_or_atlas, goal, {"decision": decision}, kw)


def run_cases(
    atlas: Union[AtlasSource, Sequence[AtlasSource]], file: Union[str, os.PathLike[str]]
) -> List[CaseResult]:
    """Runs every case of a test file (YAML or JSON, as `cra atlas test`
    reads it) against the atlas (or atlases, loaded in order); raises
    `AssertionError` listing every failed case, else returns the results."""
    sources: Sequence[AtlasSource] = (
        list(atlas) if isinstance(atlas, (list, tuple)) else [atlas]  # type: ignore[list-item]
    )
    results = [run_case(sources, case) for case in load_cases(file)]
    failed = [r for r in results if not r.passed]
    if failed:
        lines = [f"{len(failed)} of {len(results)} case(s) failed in {os.fspath(file)}:"]
        for r in failed:
            lines.append(f"  {r.case.name}:")
            lines.extend(f"    {m}" for m in r.mismatches)
        raise AssertionError("\n".join(lines))
    return results
