"""Static analysis of atlases (`cra atlas lint`, `specs/atlas-tools.md`):
the atlases are loaded, and so validated, by a runtime first; the rules
then read the merged manifests, matching patterns with the core."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Sequence, Union

from ..errors import CraError
from ..runtime import Runtime
from .model import LintModel
from .rules import ERROR, RULES, WARNING, Finding, run_rules

__all__ = ["ERROR", "RULES", "WARNING", "Finding", "LintReport", "lint"]


@dataclass
class LintReport:
    """Findings of one lint run, or the faults of the atlases that did not load."""

    paths: List[str]
    atlases: List[str] = field(default_factory=list)
    findings: List[Finding] = field(default_factory=list)
    #: One entry per atlas that did not load: `{path, code, errors}`.
    invalid: List[Dict[str, Any]] = field(default_factory=list)

    def count(self, severity: str) -> int:
        return sum(1 for f in self.findings if f.severity == severity)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "lint_version": "1",
            "paths": self.paths,
            "atlases": self.atlases,
            "valid": not self.invalid,
            "invalid": self.invalid,
            "summary": {"errors": self.count(ERROR), "warnings": self.count(WARNING)},
            "findings": [f.to_dict() for f in self.findings],
        }


def lint(paths: Sequence[Union[str, os.PathLike[str]]]) -> LintReport:
    """Loads the atlases in order into one runtime (so later ones may depend
    on earlier ones) and runs every rule over them. Atlases that fail to load
    are listed in `invalid`, and then no rule runs."""
    report = LintReport(paths=[os.fspath(p) for p in paths])
    with Runtime() as rt:
        for path in report.paths:
            try:
                report.atlases.append(rt.load_atlas(path).atlas_id)
            except CraError as e:
                errors = e.errors or [{"path": e.path or "", "message": e.message}]
                report.invalid.append({"path": path, "code": e.code, "errors": errors})
        if report.invalid:
            return report
        model = LintModel([rt.atlas_manifest(a) for a in report.atlases])
    report.findings = run_rules(model)
    return report
