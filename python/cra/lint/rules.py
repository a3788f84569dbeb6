"""The rules of `cra atlas lint` (`specs/atlas-tools.md` §2): each a
function from the loaded atlases to findings, with a stable id and severity."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Tuple

from .. import _core
from .model import LintModel, PolicyRef

__all__ = ["ERROR", "Finding", "RULES", "WARNING", "run_rules"]

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    """One problem: which rule, how bad, where (atlas and JSON pointer into
    its merged manifest), and what."""

    rule: str
    severity: str
    atlas_id: str
    pointer: str
    message: str

    def to_dict(self) -> Dict[str, str]:
        return {
            "rule": self.rule,
            "severity": self.severity,
            "atlas_id": self.atlas_id,
            "pointer": self.pointer,
            "message": self.message,
        }


Check = Callable[[LintModel], Iterator[Tuple[str, str, str]]]


def _policy_label(p: PolicyRef) -> str:
    return f"{p.type} policy {p.policy_id!r}"


def _allow_shadowed(m: LintModel) -> Iterator[Tuple[str, str, str]]:
    for p in m.policies:
        if p.type != "allow":
            continue
        matched = m.matched(p)
        denies = [m.always_denying(a, p.atlas_id) for a in matched]
        if matched and all(denies):
            names = sorted({d.policy_id for d in denies if d is not None})
            yield (
                p.atlas_id,
                p.pointer,
                f"allow policy {p.policy_id!r} never allows anything: every action it "
                f"matches is denied by {', '.join(map(repr, names))}, which always applies",
            )


def _limit_on_denied(m: LintModel) -> Iterator[Tuple[str, str, str]]:
    kinds = {"require_approval": "an approval", "rate_limit": "a rate limit", "budget": "a budget"}
    for p in m.policies:
        if p.type not in kinds:
            continue
        matched = m.matched(p)
        if matched and all(m.always_denying(a, p.atlas_id) for a in matched):
            ids = ", ".join(a.action_id for a in matched[:5])
            yield (
                p.atlas_id,
                p.pointer,
                f"{_policy_label(p)} puts {kinds[p.type]} on actions that are always "
                f"denied ({ids}): a deny is checked first, so it never takes effect",
            )


def _policy_never_applies(m: LintModel) -> Iterator[Tuple[str, str, str]]:
    for p in m.policies:
        why = p.never_applies()
        if why:
            yield (
                p.atlas_id,
                p.pointer + "/conditions",
                f"{_policy_label(p)} can never apply: {why}",
            )


def _pack_never_selected(m: LintModel) -> Iterator[Tuple[str, str, str]]:
    for k in m.packs:
        for key, what in (
            ("keywords", "no goal"),
            ("capabilities", "no request"),
            ("risk_tiers", "no request's tier"),
        ):
            if key in k.conditions and not k.conditions[key]:
                yield (
                    k.atlas_id,
                    f"{k.pointer}/conditions/{key}",
                    f"context pack {k.pack_id!r} is never selected: its conditions.{key} "
                    f"is empty, so {what} meets it",
                )


def _default_denied(m: LintModel) -> Iterator[Tuple[str, str, str]]:
    for a in m.actions:
        deciding = [
            p
            for p in m.policies
            if p.type in ("allow", "require_approval", "deny")
            and not p.never_applies()
            and p.matches(a.action_id)
        ]
        if not deciding:
            yield (
                a.atlas_id,
                a.pointer,
                f"action {a.action_id!r} is denied by default: no allow or "
                "require_approval policy matches it (and no deny says so on purpose)",
            )


def _overlapping_rate_limits(m: LintModel) -> Iterator[Tuple[str, str, str]]:
    limits = [p for p in m.policies if p.type == "rate_limit" and not p.never_applies()]
    for j, later in enumerate(limits):
        for earlier in limits[:j]:
            scope = str(earlier.parameters.get("scope", "session"))
            if scope != str(later.parameters.get("scope", "session")):
                continue
            if not (earlier.tiers() & later.tiers()):
                continue
            shared = [
                a.action_id
                for a in m.actions
                if earlier.matches(a.action_id) and later.matches(a.action_id)
            ]
            if shared:
                yield (
                    later.atlas_id,
                    later.pointer,
                    f"rate_limit policy {later.policy_id!r} overlaps {earlier.policy_id!r} "
                    f"({earlier.atlas_id}) on {', '.join(shared[:5])} with the same scope "
                    f"{scope!r}: both windows count, the tighter one decides",
                )


def _pack_unknown_capability(m: LintModel) -> Iterator[Tuple[str, str, str]]:
    known = {c for caps in m.capabilities.values() for c in caps}
    for k in m.packs:
        caps = k.conditions.get("capabilities") or []
        if caps and not any(c in known for c in caps):
            yield (
                k.atlas_id,
                f"{k.pointer}/conditions/capabilities",
                f"context pack {k.pack_id!r} needs a capability ({', '.join(caps)}) that no "
                "loaded atlas defines: a request naming it is refused, so the pack is never selected",
            )


def _guard_matches_nothing(m: LintModel) -> Iterator[Tuple[str, str, str]]:
    """A pattern starting with `*` is a guard for any atlas, so loading does
    not check it (Atlas §4); among the atlases linted together, one that
    matches none of their actions is most likely misspelt."""
    ids = [a.action_id for a in m.actions]
    for p in m.policies:
        for j, pattern in enumerate(p.patterns or []):
            if pattern == "*" or not pattern.startswith("*"):
                continue
            if any(_core.action_pattern_matches(pattern, a) for a in ids):
                continue
            yield (
                p.atlas_id,
                f"{p.pointer}/actions/{j}",
                f"pattern {pattern!r} of {_policy_label(p)} matches no action of the atlases "
                "linted together: lint it with the atlases it guards, or check its spelling",
            )


#: Every rule: id -> (severity, short name, check). Ids never change meaning.
RULES: Dict[str, Tuple[str, str, Check]] = {
    "CRA-L001": (WARNING, "allow-shadowed-by-deny", _allow_shadowed),
    "CRA-L002": (WARNING, "limit-on-denied-action", _limit_on_denied),
    "CRA-L003": (ERROR, "policy-never-applies", _policy_never_applies),
    "CRA-L004": (ERROR, "pack-never-selected", _pack_never_selected),
    "CRA-L005": (WARNING, "action-default-denied", _default_denied),
    "CRA-L006": (WARNING, "overlapping-rate-limits", _overlapping_rate_limits),
    "CRA-L007": (WARNING, "pack-unknown-capability", _pack_unknown_capability),
    "CRA-L008": (WARNING, "guard-matches-nothing", _guard_matches_nothing),
}


def run_rules(m: LintModel) -> List[Finding]:
    """Every rule's findings, by rule id, each rule's in declaration order."""
    out: List[Finding] = []
    for rule, (severity, _name, check) in RULES.items():
        for atlas_id, pointer, message in check(m):
            out.append(Finding(rule, severity, atlas_id, pointer, message))
    return out
