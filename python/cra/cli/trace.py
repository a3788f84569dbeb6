"""`cra trace verify|replay|diff|show|export`: the command line of TRACE files."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict, List

from ..analysis import diff, read_trace, replay
from ..errors import CraError
from ..trace import FileVerification, verify_jsonl
from .exits import EXIT_DIFFERENT, EXIT_INVALID, EXIT_OK, EXIT_UNREADABLE, EXIT_USAGE

__all__ = ["Progress", "add_commands"]

_COLOURS = {
    "session": "\033[1;36m",
    "carp": "\033[34m",
    "policy": "\033[35m",
    "context": "\033[2m",
    "action": "\033[32m",
    "error": "\033[1;31m",
    "x": "\033[33m",
}
_DENIED = "\033[31m"
_RESET = "\033[0m"


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


def cmd_verify(args: argparse.Namespace) -> int:
    if args.anchor is not None and len(args.files) != 1:
        print("error: --anchor goes with exactly one FILE", file=sys.stderr)
        return EXIT_USAGE
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


def _load(path: str) -> List[str]:
    return read_trace(path)


def cmd_replay(args: argparse.Namespace) -> int:
    progress = Progress(f"replaying {args.file}", os.path.getsize(args.file))
    report = replay(
        args.file, args.atlas, keep_matching=not args.only_mismatches, progress=progress
    )
    progress.finish()
    total = len(report.requests) if report.request_count is None else report.request_count
    if args.json:
        print(
            json.dumps(
                {
                    "identical": report.identical,
                    "matched": report.matched,
                    "mismatched": report.mismatched,
                    "executions_counted": report.executions_counted,
                    "requests": [r.__dict__ for r in report.requests],
                },
                indent=2,
            )
        )
    else:
        for r in report.requests:
            mark = "ok  " if r.matches else "DIFF"
            print(
                f"  {mark} request {r.request_id} (session {r.session_id[:8]}…, event {r.sequence})"
            )
            if r.error:
                print(f"       {r.error}")
            for m in r.mismatches:
                print(
                    f"       {m['field']}: recorded {json.dumps(m['recorded'])}, replayed {json.dumps(m['replayed'])}"
                )
        verdict = "IDENTICAL" if report.identical else "DIVERGENT"
        print(
            f"replay: {verdict} — {report.matched} of {total} requests match "
            f"({report.executions_counted} recorded executions counted toward limits)"
        )
    return EXIT_OK if report.identical else EXIT_DIFFERENT


def cmd_diff(args: argparse.Namespace) -> int:
    d = diff(args.a, args.b)
    if args.json:
        print(json.dumps(d.to_dict(), indent=2))
    else:
        for x in d.differences:
            print(
                f"  {x.significance:<5} {x.type:<13} {x.path}: {json.dumps(x.before)} -> {json.dumps(x.after)}"
            )
        print(f"diff: {d.compatibility} ({len(d.differences)} difference(s))")
    return EXIT_OK if d.compatibility != "divergent" else EXIT_DIFFERENT


def _summary(e: Dict[str, Any]) -> str:
    p, t = e.get("payload", {}), e.get("event_type", "")
    keys = {
        "session.started": ("agent_id", "goal"),
        "session.ended": ("reason", "duration_ms"),
        "carp.request.received": ("operation", "action_id", "goal"),
        "carp.resolution.completed": ("decision_type", "allowed_count", "denied_count"),
        "policy.evaluated": ("action_id", "result", "policy_id"),
        "context.injected": ("block_id", "token_count"),
        "action.requested": ("action_id",),
        "action.approved": ("action_id", "approver", "scope"),
        "action.denied": ("action_id", "reason", "approver"),
        "action.executed": ("action_id", "duration_ms"),
        "action.failed": ("action_id", "error_code", "error_message"),
        "policy.violated": ("action_id", "violation_type", "policy_id"),
        "error.occurred": ("code", "message"),
    }.get(t)
    items = [(k, p[k]) for k in keys if k in p] if keys else list(p.items())[:4]
    return "  ".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in items)


def cmd_show(args: argparse.Namespace) -> int:
    colour = sys.stdout.isatty() and not args.no_color and "NO_COLOR" not in os.environ
    for text in _load(args.file):
        e = json.loads(text)
        t = e["event_type"]
        c = _COLOURS.get(t.split(".")[0], "") if colour else ""
        if colour and (t == "action.denied" or e.get("payload", {}).get("result") == "deny"):
            c = _DENIED
        indent = "" if e.get("parent_span_id") is None else "  "
        ts = e["timestamp"][11:26]
        print(f"{ts} #{e['sequence']:<4} {indent}{c}{t:<26}{_RESET if c else ''} {_summary(e)}")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from ..storage import JSONLStore, SQLiteStore

    store = JSONLStore(args.store) if os.path.isdir(args.store) else SQLiteStore(args.store)
    if args.out:
        try:
            anchor = store.export(args.session, args.out)
        except CraError as e:
            print(f"error: {e.message} ({args.store})", file=sys.stderr)
            return EXIT_UNREADABLE
        if anchor is not None:
            print(
                f"{args.out}: the session's chain starts at sequence {anchor['first_sequence']} "
                f"(older events were removed by retention); its anchor is in {args.out}.anchor.json",
                file=sys.stderr,
            )
        return EXIT_OK
    texts = store._event_texts(args.session)
    if not texts:
        print(f"error: no events for session {args.session} in {args.store}", file=sys.stderr)
        return EXIT_UNREADABLE
    for text in texts:
        sys.stdout.write(text + "\n")
    first = json.loads(texts[0])["sequence"]
    if first != 0:
        print(
            f"note: the session's chain starts at sequence {first} (older events "
            "were removed by retention); export with --out FILE to get the anchor file "
            "FILE.anchor.json that verification needs",
            file=sys.stderr,
        )
    return EXIT_OK


def add_commands(sub: Any) -> None:
    """Adds `cra trace` and its subcommands to the CLI's subparsers."""
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
    v.set_defaults(func=cmd_verify)
    r = trace.add_parser("replay", help="re-run a trace's resolves against atlases and compare")
    r.add_argument("file", metavar="FILE")
    r.add_argument("--atlas", action="append", required=True, metavar="PATH")
    r.add_argument("--json", action="store_true")
    r.add_argument(
        "--only-mismatches",
        action="store_true",
        help="list only the requests that did not match (memory then stays bounded)",
    )
    r.set_defaults(func=cmd_replay)
    d = trace.add_parser("diff", help="compare two traces, ignoring ids, timestamps and hashes")
    d.add_argument("a", metavar="A")
    d.add_argument("b", metavar="B")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=cmd_diff)
    s = trace.add_parser("show", help="a readable timeline of a trace")
    s.add_argument("file", metavar="FILE")
    s.add_argument("--no-color", action="store_true")
    s.set_defaults(func=cmd_show)
    x = trace.add_parser("export", help="write a stored session as .trace.jsonl")
    x.add_argument("--store", required=True, help="an SQLite file or a JSONL store directory")
    x.add_argument("--session", required=True, metavar="ID")
    x.add_argument("--out", default=None, metavar="FILE", help="default: standard output")
    x.set_defaults(func=cmd_export)
