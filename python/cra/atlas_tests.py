"""Policy tests of an atlas (`cra atlas test`, `cra.testing`,
`specs/atlas-tools.md` §3): reading a test file (YAML or JSON, every key
checked), resolving each case with a fresh runtime and session, and
comparing what came back with what the case expects."""

from __future__ import annotations

import difflib
import importlib
import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from .carp import CARPRequest, CARPResolution
from .errors import CraError
from .runtime import Runtime

__all__ = [
    "AtlasSource",
    "Case",
    "CaseResult",
    "Mismatch",
    "TestFileError",
    "check",
    "load_cases",
    "parse_cases",
    "resolve_case",
    "run_case",
]

AtlasSource = Union[str, "os.PathLike[str]", Mapping[str, Any]]

#: What a case may say about its request, with the type each value has.
REQUEST_KEYS: Dict[str, str] = {
    "goal": "string",
    "risk_tier": "string",
    "capabilities": "list",
    "agent_id": "string",
    "atlas_ids": "list",
    "context_hints": "list",
}
CASE_KEYS = ("name", *REQUEST_KEYS, "expect")
EXPECT_KEYS = ("decision", "allowed", "denied", "requires_approval", "context")
FILE_KEYS = ("description", "cases")
DENIED_KEYS = ("action_id", "policy_id")
DEFAULT_AGENT = "cra-atlas-test"


class TestFileError(ValueError):
    """A test file that cannot be read or is not one: every fault, each
    `{path, message}` with a JSON pointer into the file."""

    __test__ = False  # not a pytest class

    def __init__(self, file: str, faults: List[Dict[str, str]]) -> None:
        self.file = file
        self.faults = faults
        lines = [f"{file}: {f['path'] or '(root)'}: {f['message']}" for f in faults]
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class Case:
    """One named case: the request's parts and what the resolution must show."""

    name: str
    request: Dict[str, Any]
    expect: Dict[str, Any]
    file: str = ""


@dataclass(frozen=True)
class Mismatch:
    """One expectation not met: `what` (e.g. `decision`, `denied x.y`)."""

    what: str
    expected: str
    got: str

    def __str__(self) -> str:
        return f"{self.what}: expected {self.expected}, got {self.got}"


@dataclass
class CaseResult:
    case: Case
    mismatches: List[Mismatch] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.mismatches

    def to_dict(self) -> Dict[str, Any]:
        return {
            "file": self.case.file,
            "name": self.case.name,
            "passed": self.passed,
            "failures": [
                {"what": m.what, "expected": m.expected, "got": m.got} for m in self.mismatches
            ],
        }


# -- reading a test file ------------------------------------------------------


def _esc(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _unknown(
    d: Mapping[str, Any], allowed: Sequence[str], at: str, f: List[Dict[str, str]]
) -> None:
    for k in d:
        if k not in allowed:
            near = difflib.get_close_matches(str(k), list(allowed), n=1, cutoff=0.6)
            hint = f" (did you mean {near[0]!r}?)" if near else f" (known: {', '.join(allowed)})"
            f.append({"path": f"{at}/{_esc(str(k))}", "message": f"unknown key {k!r}{hint}"})


def _typed(v: Any, kind: str, at: str, f: List[Dict[str, str]]) -> bool:
    ok = isinstance(v, str) if kind == "string" else isinstance(v, list)
    if ok and kind == "list" and not all(isinstance(x, str) for x in v):
        f.append({"path": at, "message": "must be a list of strings"})
        return False
    if not ok:
        f.append({"path": at, "message": f"must be a {kind}, not {type(v).__name__}"})
    return ok


def _expect(e: Any, at: str, f: List[Dict[str, str]]) -> Dict[str, Any]:
    if not isinstance(e, dict):
        f.append({"path": at, "message": "must be a mapping"})
        return {}
    _unknown(e, EXPECT_KEYS, at, f)
    out: Dict[str, Any] = {}
    if "decision" in e and _typed(e["decision"], "string", f"{at}/decision", f):
        out["decision"] = e["decision"]
    for key in ("allowed", "requires_approval", "context"):
        if key in e and _typed(e[key], "list", f"{at}/{key}", f):
            out[key] = list(e[key])
    if "denied" in e:
        out["denied"] = _denied(e["denied"], f"{at}/denied", f)
    return out


def _denied(v: Any, at: str, f: List[Dict[str, str]]) -> List[Tuple[str, Optional[str]]]:
    if not isinstance(v, list):
        f.append({"path": at, "message": "must be a list"})
        return []
    out: List[Tuple[str, Optional[str]]] = []
    for i, item in enumerate(v):
        here = f"{at}/{i}"
        if isinstance(item, str):
            out.append((item, None))
        elif isinstance(item, dict):
            _unknown(item, DENIED_KEYS, here, f)
            aid, pid = item.get("action_id"), item.get("policy_id")
            if not isinstance(aid, str):
                f.append({"path": f"{here}/action_id", "message": "required, a string"})
            elif pid is not None and not isinstance(pid, str):
                f.append({"path": f"{here}/policy_id", "message": "must be a string"})
            else:
                out.append((aid, pid))
        else:
            f.append({"path": here, "message": "must be an action id or {action_id, policy_id}"})
    return out


def parse_cases(doc: Any, file: str = "") -> List[Case]:
    """The cases of a test file's content; `TestFileError` with every fault."""
    f: List[Dict[str, str]] = []
    cases: List[Case] = []
    if not isinstance(doc, dict):
        raise TestFileError(file, [{"path": "", "message": "must be a mapping with 'cases'"}])
    _unknown(doc, FILE_KEYS, "", f)
    raw = doc.get("cases")
    if not isinstance(raw, list):
        f.append({"path": "/cases", "message": "required, a list of cases"})
        raw = []
    names: set[str] = set()
    for i, c in enumerate(raw):
        at = f"/cases/{i}"
        if not isinstance(c, dict):
            f.append({"path": at, "message": "must be a mapping"})
            continue
        _unknown(c, CASE_KEYS, at, f)
        name = c.get("name")
        if not isinstance(name, str) or not name:
            f.append({"path": f"{at}/name", "message": "required, a non-empty string"})
            name = f"case {i}"
        elif name in names:
            f.append({"path": f"{at}/name", "message": f"a second case named {name!r}"})
        names.add(name)
        if "goal" not in c:
            f.append({"path": f"{at}/goal", "message": "required, a string"})
        request = {
            k: c[k]
            for k, kind in REQUEST_KEYS.items()
            if k in c and _typed(c[k], kind, f"{at}/{k}", f)
        }
        if "expect" not in c:
            f.append({"path": f"{at}/expect", "message": "required: what the resolution must show"})
        cases.append(Case(name, request, _expect(c.get("expect", {}), f"{at}/expect", f), file))
    if f:
        raise TestFileError(file, f)
    return cases


def load_cases(path: Union[str, os.PathLike[str]]) -> List[Case]:
    """Reads a test file: JSON if its name ends `.json`, YAML otherwise."""
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as e:
        raise TestFileError(name, [{"path": "", "message": f"cannot be read: {e}"}]) from e
    try:
        if name.endswith(".json"):
            doc = json.loads(text)
        else:
            # Imported here: only test files need it (and it ships no types).
            yaml: Any = importlib.import_module("yaml")
            doc = yaml.safe_load(text)
    except Exception as e:  # a parser's own error, whatever its class
        raise TestFileError(name, [{"path": "", "message": f"not valid: {e}"}]) from e
    return parse_cases(doc, name)


# -- running a case -----------------------------------------------------------


def resolve_case(rt: Runtime, request: Mapping[str, Any]) -> CARPResolution:
    """Resolves one case's request in a new session of `rt` (ended after)."""
    agent = str(request.get("agent_id") or DEFAULT_AGENT)
    goal = str(request["goal"])
    sid = rt.create_session(agent_id=agent, goal=goal)
    try:
        req = CARPRequest.resolve(
            sid,
            agent,
            goal,
            risk_tier=request.get("risk_tier"),
            atlas_ids=request.get("atlas_ids"),
            required_capabilities=request.get("capabilities"),
            context_hints=request.get("context_hints"),
            timestamp=rt.timestamp(),
        )
        return rt.resolve(req)
    finally:
        rt.end_session(sid)


def _state(res: CARPResolution, action_id: str) -> str:
    for a in res.allowed_actions:
        if a.action_id == action_id:
            return "requires approval" if a.requires_confirmation else "allowed"
    for d in res.denied_actions:
        if d.action_id == action_id:
            return f"denied by {d.policy_id!r} ({d.reason})"
    return "not in the resolution"


def check(res: CARPResolution, expect: Mapping[str, Any]) -> List[Mismatch]:
    """Every expectation of `expect` that `res` does not meet."""
    out: List[Mismatch] = []
    if "decision" in expect and res.decision.type != expect["decision"]:
        out.append(Mismatch("decision", repr(expect["decision"]), repr(res.decision.type)))
    for key, want in (("allowed", "allowed"), ("requires_approval", "requires approval")):
        for aid in expect.get(key, []):
            got = _state(res, aid)
            if got != want:
                out.append(Mismatch(f"{key} {aid}", want, got))
    for aid, pid in expect.get("denied", []):
        denied = {d.action_id: d for d in res.denied_actions}
        want = "denied" if pid is None else f"denied by {pid!r}"
        if aid not in denied or (pid is not None and denied[aid].policy_id != pid):
            out.append(Mismatch(f"denied {aid}", want, _state(res, aid)))
    if "context" in expect:
        got_blocks = [b.block_id for b in res.context_blocks]
        if got_blocks != list(expect["context"]):
            out.append(Mismatch("context", repr(list(expect["context"])), repr(got_blocks)))
    return out


def run_case(atlases: Sequence[AtlasSource], case: Case) -> CaseResult:
    """Loads the atlases into a fresh runtime and checks one case. An
    atlas that does not load raises its `CraError`; a resolve refused is a
    failure of the case."""
    with Runtime() as rt:
        for a in atlases:
            rt.load_atlas(a)
        try:
            res = resolve_case(rt, case.request)
        except CraError as e:
            return CaseResult(case, [Mismatch("resolve", "a resolution", f"{e.code}: {e}")])
        return CaseResult(case, check(res, case.expect))
