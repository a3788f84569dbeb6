"""`cra atlas validate|lint|test|init`: the atlas tools of the command line
(`specs/atlas-tools.md`)."""

from __future__ import annotations

import argparse
import json
import os
import re
from typing import Any, Dict, List

from ..atlas_tests import CaseResult, TestFileError, load_cases, run_case
from ..errors import CraError
from ..lint import ERROR, WARNING, lint
from ..runtime import Runtime
from .carp import atlas_validate
from .exits import EXIT_INVALID, EXIT_OK, EXIT_UNREADABLE, EXIT_USAGE
from .safe import err, out, out_json

__all__ = ["add_commands", "atlas_init", "atlas_lint", "atlas_test"]


def atlas_lint(args: argparse.Namespace) -> int:
    """Loads the atlases (validating them) and reports every rule's findings."""
    report = lint(args.paths)
    if report.invalid:
        status = EXIT_UNREADABLE
    elif report.count(ERROR) or (args.strict and report.count(WARNING)):
        status = EXIT_INVALID
    else:
        status = EXIT_OK
    if args.json:
        out_json(dict(report.to_dict(), strict=bool(args.strict), exit_status=status))
        return status
    for bad in report.invalid:
        out(f"{bad['path']}: INVALID ({bad['code']}, {len(bad['errors'])} fault(s))")
        for f in bad["errors"]:
            out(f"  {f['path'] or '(root)'}: {f['message']}")
    for f in report.findings:
        out(f"{f.atlas_id}{f.pointer}: {f.severity} {f.rule}: {f.message}")
    if not report.invalid:
        out(
            f"{len(report.atlases)} atlas(es): {report.count(ERROR)} error(s), "
            f"{report.count(WARNING)} warning(s)" + (" (--strict)" if args.strict else "")
        )
    return status


def atlas_test(args: argparse.Namespace) -> int:
    """Runs every case of every test file against the atlas."""
    try:
        with Runtime() as rt:
            rt.load_atlas(args.path)
    except CraError as e:
        faults = e.errors or [{"path": e.path or "", "message": e.message}]
        return _unreadable(args, args.path, e.code, faults)
    results: List[CaseResult] = []
    try:
        cases = [c for file in args.tests for c in load_cases(file)]
    except TestFileError as e:
        return _unreadable(args, e.file, "TEST_FILE_INVALID", e.faults)
    results = [run_case([args.path], c) for c in cases]
    failed = sum(1 for r in results if not r.passed)
    if args.json:
        out_json(
            {
                "atlas": args.path,
                "passed": len(results) - failed,
                "failed": failed,
                "cases": [r.to_dict() for r in results],
            }
        )
    else:
        for r in results:
            out(f"{'PASS' if r.passed else 'FAIL'} {r.case.file}: {r.case.name}")
            for m in r.mismatches:
                out(f"  {m}")
        out(f"{len(results) - failed} passed, {failed} failed")
    return EXIT_INVALID if failed else EXIT_OK


def _unreadable(
    args: argparse.Namespace, file: str, code: str, faults: List[Dict[str, str]]
) -> int:
    if args.json:
        out_json({"atlas": args.path, "error": {"file": file, "code": code, "errors": faults}})
    else:
        err(f"error: {file}: {code}")
        for f in faults:
            err(f"  {f['path'] or '(root)'}: {f['message']}")
    return EXIT_UNREADABLE


_ATLAS_ID = re.compile(r"^[a-z][a-z0-9]*(\.[a-z][a-z0-9-]*)+$")
_SLUG = re.compile(r"^[a-z][a-z0-9-]*$")


def atlas_init(args: argparse.Namespace) -> int:
    """Writes a minimal atlas directory that validates, lints clean under
    `--strict`, and passes its own test file."""
    name: str = args.name
    if _ATLAS_ID.match(name):
        atlas_id, slug = name, name.rsplit(".", 1)[1]
    elif _SLUG.match(name):
        atlas_id, slug = f"local.{name}", name
    else:
        err(f"error: {name!r} is neither an atlas id (org.example.notes) nor a name (notes)")
        return EXIT_USAGE
    target = os.path.join(args.dir, slug)
    if os.path.lexists(target):
        err(f"error: {target} exists already; nothing was written")
        return EXIT_USAGE
    for rel, text in _scaffold(atlas_id, slug.replace("-", "_")).items():
        path = os.path.join(target, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "x", encoding="utf-8") as fh:
            fh.write(text)
    out(f"created {target} ({atlas_id})")
    out(f"  cra atlas lint --strict {target}")
    out(f"  cra atlas test {target} {os.path.join(target, 'tests', 'policies.yaml')}")
    return EXIT_OK


def _scaffold(atlas_id: str, act: str) -> Dict[str, str]:
    manifest: Dict[str, Any] = {
        "atlas_version": "1.0",
        "atlas_id": atlas_id,
        "version": "0.1.0",
        "name": f"{act} atlas",
        "description": "What an agent may do with the notes, and what it should know.",
        "capabilities": [
            {"capability_id": "notes", "actions": [f"{act}.read", f"{act}.write"]},
        ],
        "actions": [
            {"action_id": f"{act}.read", "name": "Read notes", "risk_tier": "low"},
            {"action_id": f"{act}.write", "name": "Write a note", "risk_tier": "medium"},
        ],
        "context_packs": [
            {"pack_id": "guide", "files": ["context/guide.md"], "priority": 10},
        ],
    }
    policies = [
        {"policy_id": "allow-read", "type": "allow", "actions": [f"{act}.read"]},
        {
            "policy_id": "no-writes-when-critical",
            "type": "deny",
            "actions": [f"{act}.write"],
            "conditions": {"risk_tiers": ["critical"]},
            "reason": "No writes during a critical task",
        },
        {"policy_id": "approve-writes", "type": "require_approval", "actions": [f"{act}.write"]},
        {
            "policy_id": "write-rate",
            "type": "rate_limit",
            "actions": [f"{act}.write"],
            "parameters": {"max_calls": 10, "window_seconds": 60},
        },
    ]
    tests = f"""# Policy tests: cra atlas test . tests/policies.yaml
cases:
  - name: reads are allowed, writes wait for a human
    goal: Summarise the notes
    expect:
      decision: partial
      allowed: [{act}.read]
      requires_approval: [{act}.write]
      context: [guide/context/guide.md]
  - name: no writes during a critical task
    goal: Fix the outage notes
    risk_tier: critical
    expect:
      decision: partial
      allowed: [{act}.read]
      denied:
        - action_id: {act}.write
          policy_id: no-writes-when-critical
"""
    return {
        "atlas.json": json.dumps(manifest, indent=2) + "\n",
        os.path.join("policies", "default.json"): json.dumps(policies, indent=2) + "\n",
        os.path.join("context", "guide.md"): "# Notes\n\nKeep notes short and dated.\n",
        os.path.join("tests", "policies.yaml"): tests,
    }


def add_commands(sub: Any) -> None:
    """Adds `cra atlas validate|lint|test|init` to the CLI's subparsers."""
    atlas = sub.add_parser("atlas", help="work with atlases").add_subparsers(
        dest="atlas_command", required=True
    )
    av = atlas.add_parser("validate", help="validate atlas manifests or directories")
    av.add_argument("paths", nargs="+", metavar="PATH")
    av.add_argument("--json", action="store_true", help="machine-readable fault list")
    av.set_defaults(func=atlas_validate)

    al = atlas.add_parser("lint", help="find policies and packs that cannot do what they say")
    al.add_argument("paths", nargs="+", metavar="PATH")
    al.add_argument("--json", action="store_true", help="machine-readable report")
    al.add_argument("--strict", action="store_true", help="warnings fail too (exit 1)")
    al.set_defaults(func=atlas_lint)

    at = atlas.add_parser("test", help="run policy test cases (YAML or JSON) against an atlas")
    at.add_argument("path", metavar="PATH")
    at.add_argument("tests", nargs="+", metavar="TESTS")
    at.add_argument("--json", action="store_true", help="machine-readable results")
    at.set_defaults(func=atlas_test)

    ai = atlas.add_parser("init", help="create a minimal atlas with a passing test file")
    ai.add_argument("name", metavar="NAME", help="an atlas id, or a name (local.NAME)")
    ai.add_argument("--dir", default=".", metavar="DIR", help="where to create NAME/")
    ai.set_defaults(func=atlas_init)
