"""What `cra atlas lint` reads of loaded atlases: their actions, policies
and packs with the JSON pointer of each, and the questions the rules ask
of them (which actions a policy matches, whether its conditions always or
never hold). Matching is the core's (`_core.action_pattern_matches`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence

from .. import _core

__all__ = ["ActionRef", "LintModel", "PackRef", "PolicyRef", "RISK_TIERS"]

#: Every request risk tier (Atlas §5); a `risk_tiers` list naming all of
#: them is no condition at all.
RISK_TIERS = frozenset({"low", "medium", "high", "critical"})


@dataclass(frozen=True)
class ActionRef:
    atlas_id: str
    index: int
    action_id: str

    @property
    def pointer(self) -> str:
        return f"/actions/{self.index}"


@dataclass(frozen=True)
class PolicyRef:
    atlas_id: str
    index: int
    policy_id: str
    type: str
    patterns: Optional[List[str]]
    conditions: Dict[str, Any]
    parameters: Dict[str, Any]

    @property
    def pointer(self) -> str:
        return f"/policies/{self.index}"

    def matches(self, action_id: str) -> bool:
        """Whether the policy names the action (absent `actions` = every one)."""
        if self.patterns is None:
            return True
        return any(_core.action_pattern_matches(p, action_id) for p in self.patterns)

    def never_applies(self) -> Optional[str]:
        """Why no request can meet the policy's conditions, or `None` (an
        empty `agent_ids` matches no agent, an empty `risk_tiers` names no
        tier, Atlas §5)."""
        if "agent_ids" in self.conditions and not self.conditions["agent_ids"]:
            return "its conditions.agent_ids is empty, so no agent meets it"
        if "risk_tiers" in self.conditions and not self.conditions["risk_tiers"]:
            return "its conditions.risk_tiers is empty, so no request's tier is in it"
        return None

    def always_applies(self) -> bool:
        """Whether every request meets the policy's conditions."""
        agents = self.conditions.get("agent_ids")
        # Only a pattern of stars alone matches every agent id.
        agents_ok = agents is None or any(a and not a.strip("*") for a in agents)
        return self.tiers() == RISK_TIERS and agents_ok

    def tiers(self) -> frozenset[str]:
        """The request risk tiers under which the policy can apply (an
        absent `risk_tiers` is every tier; an empty one none)."""
        t = self.conditions.get("risk_tiers")
        return RISK_TIERS if t is None else frozenset(t) & RISK_TIERS


@dataclass(frozen=True)
class PackRef:
    atlas_id: str
    index: int
    pack_id: str
    conditions: Dict[str, Any]

    @property
    def pointer(self) -> str:
        return f"/context_packs/{self.index}"


class LintModel:
    """The loaded atlases as the rules see them, in load order."""

    def __init__(self, manifests: Sequence[Mapping[str, Any]]) -> None:
        self.actions: List[ActionRef] = []
        self.policies: List[PolicyRef] = []
        self.packs: List[PackRef] = []
        self.capabilities: Dict[str, List[str]] = {}
        for m in manifests:
            aid = str(m["atlas_id"])
            for i, a in enumerate(_objects(m.get("actions"))):
                self.actions.append(ActionRef(aid, i, str(a["action_id"])))
            for i, p in enumerate(_objects(m.get("policies"))):
                pats = p.get("actions")
                self.policies.append(
                    PolicyRef(
                        atlas_id=aid,
                        index=i,
                        policy_id=str(p["policy_id"]),
                        type=str(p["type"]),
                        patterns=None if pats is None else [str(x) for x in pats],
                        conditions=dict(p.get("conditions") or {}),
                        parameters=dict(p.get("parameters") or {}),
                    )
                )
            for i, k in enumerate(_objects(m.get("context_packs"))):
                self.packs.append(
                    PackRef(aid, i, str(k["pack_id"]), dict(k.get("conditions") or {}))
                )
            caps = [str(c["capability_id"]) for c in _objects(m.get("capabilities"))]
            self.capabilities[aid] = caps

    def matched(self, policy: PolicyRef) -> List[ActionRef]:
        """The loaded actions the policy names, in load then declaration order."""
        return [a for a in self.actions if policy.matches(a.action_id)]

    def always_denying(self, action: ActionRef, also: str = "") -> Optional[PolicyRef]:
        """A `deny` policy that denies the action in every resolve it is in:
        one that always applies, of the action's atlas (or of `also`, the
        atlas of a policy that can only apply when that atlas is a candidate)."""
        for p in self.policies:
            if (
                p.type == "deny"
                and p.atlas_id in (action.atlas_id, also)
                and p.always_applies()
                and p.matches(action.action_id)
            ):
                return p
        return None


def _objects(v: Any) -> List[Dict[str, Any]]:
    return [x for x in v if isinstance(x, dict)] if isinstance(v, list) else []
