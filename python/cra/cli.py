"""The `cra` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Callable, Dict, Optional, Sequence

from . import __version__
from .errors import CraError
from .trace import FileVerification, verify_jsonl

__all__ = ["main"]

EXIT_OK, EXIT_INVALID, EXIT_UNREADABLE = 0, 1, 2


class Progress:
    """A one-line progress display on stderr, shown only on a terminal."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total = label, max(total, 1)
        self.enabled = sys.stderr.isatty() and total > 8 * 1024 * 1024

    def __call__(self, done: int) -> None:
        if self.enabled:
            pct = 100.0 * done / self.total
            sys.stderr.write(
                f"\r{self.label}: {pct:5.1f}% ({done >> 20} of {self.total >> 20} MiB)"
            )
            sys.stderr.flush()

    def finish(self) -> None:
        if self.enabled:
            sys.stderr.write("\r" + " " * 60 + "\r")
            sys.stderr.flush()


def _verification_json(path: str, r: FileVerification) -> Dict[str, Any]:
    return {
        "file": path,
        "valid": r.valid,
        "lines": r.lines,
        "event_count": r.event_count,
        "torn_tail": (
            None if r.torn_tail is None else dict(zip(("line", "offset", "bytes"), r.torn_tail))
        ),
        "bad_lines": [{"line": n, "message": m} for n, m in r.bad_lines],
        "bad_line_count": r.bad_line_count,
        "anchor_file": r.anchor_file,
        "anchor_faults": r.anchor_faults,
        "sessions": [
            {
                "session_id": sid,
                "valid": v.valid,
                "error": v.error,
                "index": v.index,
                "line": v.line,
                "message": v.message,
                "event_count": v.event_count,
                "algorithm": v.algorithm,
                "anchored_at": v.anchored_at,
            }
            for sid, v in r.sessions.items()
        ],
    }


def _print_verification(path: str, r: FileVerification) -> None:
    verdict = "VALID" if r.valid else "INVALID"
    print(f"{path}: {verdict} — {len(r.sessions)} session(s), {r.event_count} event(s)")
    if r.anchor_file is not None:
        print(f"  anchor file {r.anchor_file}")
    for sid, v in r.sessions.items():
        alg = v.algorithm or "unknown hash"
        start = (
            ""
            if v.anchored_at is None
            else f", verified from the anchor at sequence {v.anchored_at}, not from genesis"
        )
        if v.valid:
            print(f"  ok    {sid}  {v.event_count} events ({alg}){start}")
        else:
            where = f"event {v.index}" + (f", line {v.line}" if v.line else "")
            print(f"  FAIL  {sid}  {v.error} at {where}: {v.message}")
    for message in r.anchor_faults:
        print(f"  FAIL  {message}")
    for line, message in r.bad_lines:
        print(f"  FAIL  line {line}: {message}")
    if r.bad_line_count > len(r.bad_lines):
        print(f"  … and {r.bad_line_count - len(r.bad_lines)} more bad lines")
    if r.torn_tail is not None:
        line, offset, size = r.torn_tail
        print(
            f"  FAIL  torn last line {line} ({size} bytes at offset {offset}): "
            "the file was cut mid-write; events before it are checked above"
        )


def _cmd_trace_verify(args: argparse.Namespace) -> int:
    if args.anchor is not None and len(args.files) != 1:
        print("error: --anchor goes with exactly one FILE", file=sys.stderr)
        return EXIT_UNREADABLE
    worst = EXIT_OK
    reports = []
    for path in args.files:
        try:
            size = os.path.getsize(path)
            progress = Progress(f"verifying {path}", size)
            r = verify_jsonl(path, progress, anchor=args.anchor)
            progress.finish()
        except (OSError, CraError) as e:
            msg = e.message if isinstance(e, CraError) else str(e)
            if args.json:
                reports.append({"file": path, "valid": False, "unreadable": msg})
            else:
                print(f"{path}: UNREADABLE — {msg}", file=sys.stderr)
            worst = max(worst, EXIT_UNREADABLE)
            continue
        if args.json:
            reports.append(_verification_json(path, r))
        else:
            _print_verification(path, r)
        if not r.valid:
            worst = max(worst, EXIT_INVALID)
    if args.json:
        print(json.dumps(reports[0] if len(reports) == 1 else reports, indent=2))
    return worst


def _lazy(module: str, func: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        import importlib

        fn: Callable[[argparse.Namespace], int] = getattr(
            importlib.import_module(f"cra.{module}"), func
        )
        return fn(args)

    return run


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cra", description="Context Registry for Agents")
    p.add_argument("--version", action="version", version=f"cra {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    trace = sub.add_parser("trace", help="work with TRACE files").add_subparsers(
        dest="trace_command", required=True
    )
    v = trace.add_parser("verify", help="verify the hash chains of .trace.jsonl files")
    v.add_argument("files", nargs="+", metavar="FILE")
    v.add_argument("--json", action="store_true", help="machine-readable report")
    v.add_argument(
        "--anchor",
        default=None,
        metavar="FILE",
        help="verify chains from this anchor file (default: FILE.anchor.json beside FILE, if any)",
    )
    v.set_defaults(func=_cmd_trace_verify)
    from .cli_trace import add_commands

    add_commands(trace, _lazy)

    atlas = sub.add_parser("atlas", help="work with atlases").add_subparsers(
        dest="atlas_command", required=True
    )
    av = atlas.add_parser("validate", help="validate atlas manifests or directories")
    av.add_argument("paths", nargs="+", metavar="PATH")
    av.add_argument("--json", action="store_true", help="machine-readable fault list")
    av.set_defaults(func=_lazy("cli_carp", "atlas_validate"))

    rs = sub.add_parser("resolve", help="resolve one CARP request against atlases")
    rs.add_argument("--atlas", action="append", required=True, metavar="PATH")
    rs.add_argument("--request", required=True, metavar="FILE")
    rs.add_argument("--session-goal", default=None, metavar="TEXT")
    rs.add_argument("--trace-out", default=None, metavar="FILE")
    rs.set_defaults(func=_lazy("cli_carp", "resolve"))

    demo = sub.add_parser("demo", help="run the example agent session")
    demo.add_argument("--out", default="cra-traces", help="directory for the trace file")
    demo.set_defaults(func=_lazy("demo", "run"))

    conf = sub.add_parser("conformance", help="run the protocol conformance suite")
    conf.add_argument("--json", action="store_true", help="print the JSON report only")
    conf.add_argument("--cases", default=None, help="directory of case files")
    conf.set_defaults(func=_lazy("conformance", "run"))

    from .server.config import add_serve_command

    add_serve_command(sub, _lazy)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except CraError as e:
        print(f"error: {e.code}: {e}", file=sys.stderr)
        return EXIT_UNREADABLE
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_UNREADABLE
    except KeyboardInterrupt:
        return 130
