"""`cra conformance`: runs the protocol conformance suite and prints its report."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..conformance import default_cases_dir, run_suite
from .exits import EXIT_INVALID, EXIT_OK, EXIT_UNREADABLE, EXIT_USAGE
from .safe import err, out, out_json

__all__ = ["add_commands", "run"]


def run(args: argparse.Namespace) -> int:
    """Runs the suite on `--cases` (or the packaged cases) and prints its
    report; exit 2 when there is no case to run."""
    directory = Path(args.cases) if args.cases else default_cases_dir()
    if directory is None or not directory.is_dir():
        err("error: no conformance cases found; pass --cases DIR")
        return EXIT_USAGE
    report = run_suite(directory)
    if report["test_run"]["total"] == 0:
        err(f"error: no conformance cases found in {directory}")
        return EXIT_UNREADABLE
    if args.json:
        out_json(report)
    else:
        run_ = report["test_run"]
        for r in report["results"]:
            mark = {"passed": "ok  ", "failed": "FAIL", "skipped": "skip"}[r["status"]]
            line = f"  {mark} {r['test_id']}"
            if r["status"] != "passed":
                line += f"  — {r.get('error', '')}"
            out(line)
        out(
            f"conformance: {run_['passed']} passed, {run_['failed']} failed, "
            f"{run_['skipped']} skipped ({report['conformance_level']}, {run_['duration_ms']:.0f} ms)"
        )
    return EXIT_OK if report["test_run"]["failed"] == 0 else EXIT_INVALID


def add_commands(sub: Any) -> None:
    """Adds `cra conformance` to the CLI's subparsers."""
    conf = sub.add_parser("conformance", help="run the protocol conformance suite")
    conf.add_argument("--json", action="store_true", help="print the JSON report only")
    conf.add_argument(
        "--cases",
        default=None,
        help="directory of case files (default: the cases shipped with cra)",
    )
    conf.set_defaults(func=run)
