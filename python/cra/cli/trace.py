"""`cra trace verify|replay|diff|show`: the command line of TRACE files (a store's
sessions: `cli/trace_store.py`)."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..analysis import _copy_of, _event_lines, _side_files, diff, replay
from ..errors import CraError, IntegrityError
from ..trace import FileVerification, verify_jsonl
from . import proofs
from .exits import EXIT_DIFFERENT, EXIT_INVALID, EXIT_OK, EXIT_UNREADABLE, EXIT_USAGE
from .safe import Raw, err, out, out_json
from .trace_store import cmd_export, verify_store

__all__ = ["Progress", "add_commands"]

_COLOURS = {
    "session": Raw("\033[1;36m"),
    "carp": Raw("\033[34m"),
    "policy": Raw("\033[35m"),
    "context": Raw("\033[2m"),
    "action": Raw("\033[32m"),
    "error": Raw("\033[1;31m"),
    "x": Raw("\033[33m"),
}
_DENIED = Raw("\033[31m")
_RESET = Raw("\033[0m")
_NONE = Raw("")


class Progress:
    """A one-line progress display on stderr, shown only on a terminal."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total = label, max(total, 1)
        self.enabled = sys.stderr.isatty() and total > 8 * 1024 * 1024

    def __call__(self, done: int) -> None:
        if self.enabled:
            pct = 100.0 * done / self.total
            err(
                Raw("\r"),
                f"{self.label}: {pct:5.1f}% ({done >> 20} of {self.total >> 20} MiB)",
                end="",
            )

    def finish(self) -> None:
        if self.enabled:
            err(Raw("\r" + " " * 60 + "\r"), end="")


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
        "torn_lines": [
            {"line": n, "offset": offset, "bytes": size, "side_file": side}
            for n, offset, size, side in r.torn_lines
        ],
        "torn_line_count": r.torn_line_count,
        "anchor_file": r.anchor_file,
        "anchor_faults": r.anchor_faults,
        "completeness_checked": r.completeness_checked,
        "key_id": r.key_id,
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
                "signatures": None if r.signatures is None else r.signatures.get(sid),
            }
            for sid, v in r.sessions.items()
        ],
    }


def _torn_note(number: int, side: str) -> str:
    return f"line {number}: torn write from a crash, copied to {side}"


def _print_verification(path: str, r: FileVerification) -> None:
    verdict = "VALID" if r.valid else "INVALID"
    torn = "" if not r.torn_line_count else f", {r.torn_line_count} torn line(s) set aside"
    out(f"{path}: {verdict} — {len(r.sessions)} session(s), {r.event_count} event(s){torn}")
    if r.anchor_file is not None:
        out(f"  anchor file {r.anchor_file}")
    for sid, v in r.sessions.items():
        alg = v.algorithm or "unknown hash"
        start = (
            ""
            if v.anchored_at is None
            else f", verified from the anchor at sequence {v.anchored_at}, not from genesis"
        )
        if v.valid:
            out(f"  ok    {sid}  {v.event_count} events ({alg}){start}")
        else:
            where = f"event {v.index}" + (f", line {v.line}" if v.line else "")
            out(f"  FAIL  {sid}  {v.error} at {where}: {v.message}")
    _print_signatures(r)
    for message in r.anchor_faults:
        out(f"  FAIL  {message}")
    for line, message in r.bad_lines:
        out(f"  FAIL  line {line}: {message}")
    if r.bad_line_count > len(r.bad_lines):
        out(f"  … and {r.bad_line_count - len(r.bad_lines)} more bad lines")
    for line, _, _, side in r.torn_lines:
        out(f"  torn  {_torn_note(line, side)} (not an event; skipped)")
    if r.torn_line_count > len(r.torn_lines):
        out(f"  … and {r.torn_line_count - len(r.torn_lines)} more torn lines")
    if r.torn_tail is not None:
        line, offset, size = r.torn_tail
        out(
            f"  FAIL  torn last line {line} ({size} bytes at offset {offset}): "
            "the file was cut mid-write; events before it are checked above"
        )


def _print_signatures(r: FileVerification) -> None:
    if r.signatures is None:
        out("  note  no public key given: completeness and signatures were not checked")
        return
    for sid, s in r.signatures.items():
        cover = f"{s['signed_events']} of {s['events']} events signed ({s['coverage']:.0%})"
        state = (
            "ended, final checkpoint"
            if s["closed"]
            else "ended"
            if s["ended"]
            else f"open, unsigned tail {s['unsigned_tail']}"
        )
        mark = "sig ok" if not s["faults"] else "FAIL  "
        out(f"  {mark} {sid}  {s['valid_checkpoints']} checkpoint(s), {cover}; {state}")
        for f in s["faults"]:
            at = "" if f["sequence"] is None else f" at sequence {f['sequence']}"
            out(f"  FAIL  {sid}  {f['kind']}{at}: {f['message']}")
        if not s["closed"] and not s["faults"]:
            out(
                f"  note  {sid}  not proven complete: it does not end with a final checkpoint "
                "(an open session, or one cut after its last checkpoint; --checkpoint with a "
                "later checkpoint kept elsewhere tells which)"
            )


def cmd_verify(args: argparse.Namespace) -> int:
    if args.store is not None:
        return verify_store(args)
    if not args.files:
        err("error: give FILE(s), or --store PATH --session ID")
        return EXIT_USAGE
    if args.anchor is not None and len(args.files) != 1:
        err("error: --anchor goes with exactly one FILE")
        return EXIT_USAGE
    worst = EXIT_OK
    reports = []
    for path in args.files:
        try:
            size = os.path.getsize(path)
            progress = Progress(f"verifying {path}", size)
            r = verify_jsonl(
                path,
                progress,
                anchor=args.anchor,
                public_key=args.public_key,
                checkpoints=args.checkpoint,
            )
            progress.finish()
        except (OSError, CraError) as e:
            msg = e.message if isinstance(e, CraError) else str(e)
            if args.json:
                reports.append({"file": path, "valid": False, "unreadable": msg})
            else:
                err(f"{path}: UNREADABLE — {msg}")
            worst = max(worst, EXIT_UNREADABLE)
            continue
        if args.json:
            reports.append(_verification_json(path, r))
        else:
            _print_verification(path, r)
        if not r.valid:
            worst = max(worst, EXIT_INVALID)
    if args.json:
        out_json(reports[0] if len(reports) == 1 else reports)
    return worst


def _torn_lines(path: str) -> List[Tuple[int, str]]:
    """`(line number, side file)` of the torn lines set aside in a trace file
    (which `diff` and `replay` skip), found from its side files, not by
    reading every line."""
    sides = _side_files(path)
    found: List[Tuple[int, str]] = []
    if not sides:
        return found
    try:
        with open(path, "rb") as f:
            for start in sorted(sides):
                f.seek(max(start - 1, 0))
                if start and f.read(1) != b"\n":
                    continue
                line = f.readline()
                side = _copy_of(line[:-1], sides[start]) if line.endswith(b"\n") else None
                if side is not None:
                    found.append((start, side))
            numbered: List[Tuple[int, str]] = []
            newlines = at = 0
            f.seek(0)
            for start, side in found:
                while at < start:
                    chunk = f.read(min(1 << 20, start - at))
                    if not chunk:
                        break
                    newlines += chunk.count(b"\n")
                    at += len(chunk)
                numbered.append((newlines + 1, side))
    except OSError:
        return []
    return numbered


def _note_torn_lines(path: str, torn: Sequence[Tuple[int, str]]) -> None:
    for number, side in torn:
        err(f"note: {path}: {_torn_note(number, side)}; skipped")


def _bad_line(path: str, number: int, reason: str) -> IntegrityError:
    return IntegrityError(f"{path}: line {number}: {reason}", code="TRACE_INVALID")


_EVENT_INDEX = re.compile(r"/(\d+)(?:/.*)?")


def _located(e: CraError, paths: Sequence[str]) -> CraError:
    """A core error about the event at index N of a trace (its path `/N/...`)
    as one that names the file and the line; `e` itself for any other error."""
    found = _EVENT_INDEX.fullmatch(e.path or "")
    if e.code != "TRACE_INVALID" or found is None:
        return e
    index = int(found.group(1))
    for path in paths:
        try:
            for i, (number, line) in enumerate(_event_lines(path)):
                if i == index:
                    if _rejected(line):
                        return _bad_line(path, number, e.message)
                    break
        except (CraError, OSError):
            continue
    return e


def _rejected(line: bytes) -> bool:
    """Whether the core refuses this line as an event (as `diff` and `replay` do)."""
    try:
        diff([line.decode("utf-8")], [])
    except (CraError, UnicodeDecodeError):
        return True
    return False


def cmd_replay(args: argparse.Namespace) -> int:
    progress = Progress(f"replaying {args.file}", os.path.getsize(args.file))
    try:
        report = replay(
            args.file, args.atlas, keep_matching=not args.only_mismatches, progress=progress
        )
    except CraError as e:
        raise _located(e, [args.file]) from None
    finally:
        progress.finish()
    _note_torn_lines(args.file, _torn_lines(args.file))
    total = len(report.requests) if report.request_count is None else report.request_count
    if args.json:
        out_json(
            {
                "identical": report.identical,
                "matched": report.matched,
                "mismatched": report.mismatched,
                "executions_counted": report.executions_counted,
                "requests": [r.__dict__ for r in report.requests],
            }
        )
    else:
        for r in report.requests:
            mark = "ok  " if r.matches else "DIFF"
            out(
                f"  {mark} request {r.request_id} (session {r.session_id[:8]}…, event {r.sequence})"
            )
            if r.error:
                out(f"       {r.error}")
            for m in r.mismatches:
                out(
                    f"       {m['field']}: recorded {json.dumps(m['recorded'])}, replayed {json.dumps(m['replayed'])}"
                )
        verdict = "IDENTICAL" if report.identical else "DIVERGENT"
        out(
            f"replay: {verdict} — {report.matched} of {total} requests match "
            f"({report.executions_counted} recorded executions counted toward limits)"
        )
    return EXIT_OK if report.identical else EXIT_DIFFERENT


def cmd_diff(args: argparse.Namespace) -> int:
    try:
        d = diff(args.a, args.b)
    except CraError as e:
        raise _located(e, [args.a, args.b]) from None
    for path in dict.fromkeys([args.a, args.b]):
        _note_torn_lines(path, _torn_lines(path))
    if args.json:
        out_json(d.to_dict())
    else:
        for x in d.differences:
            out(
                f"  {x.significance:<5} {x.type:<13} {x.path}: {json.dumps(x.before)} -> {json.dumps(x.after)}"
            )
        out(f"diff: {d.compatibility} ({len(d.differences)} difference(s))")
    return EXIT_OK if d.compatibility != "divergent" else EXIT_DIFFERENT


def _summary(e: Dict[str, Any]) -> str:
    p, t = e.get("payload", {}), e["event_type"]
    if not isinstance(p, dict):
        return json.dumps(p)
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


_JSON_KINDS: Dict[type, str] = {
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


def _event(line: bytes) -> Tuple[Optional[Dict[str, Any]], str]:
    """The event a trace line holds, with the fields `show` prints, or why not."""
    try:
        e = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as x:
        return None, f"not UTF-8 (byte {x.start + 1} of the line)"
    except RecursionError:
        return None, "not JSON: nested too deeply"
    except json.JSONDecodeError as x:
        # Some of its messages end in "at" ("Invalid control character at").
        msg = x.msg[:-3] if x.msg.endswith(" at") else x.msg
        return None, f"not JSON: {msg} at column {x.colno}"
    except ValueError as x:  # say, an integer of more digits than Python converts
        return None, f"not JSON: {x}"
    if not isinstance(e, dict):
        kind = _JSON_KINDS.get(type(e), "value")
        return None, f"not an event: a JSON {kind}, not an object"
    for key in ("session_id", "trace_id", "span_id", "timestamp", "event_type"):
        if not isinstance(e.get(key), str):
            return None, f"the event has no string {key}"
    seq = e.get("sequence")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        return None, "the event has no sequence (a whole number)"
    return e, ""


def cmd_show(args: argparse.Namespace) -> int:
    colour = sys.stdout.isatty() and not args.no_color and "NO_COLOR" not in os.environ
    torn: List[Tuple[int, str]] = []
    for number, line in _event_lines(args.file, lambda n, side: torn.append((n, side))):
        e, why = _event(line)
        if e is None:
            raise _bad_line(args.file, number, why)
        t = e["event_type"]
        c = _COLOURS.get(t.split(".")[0], _NONE) if colour else _NONE
        payload = e.get("payload")
        if colour and (
            t == "action.denied" or (isinstance(payload, dict) and payload.get("result") == "deny")
        ):
            c = _DENIED
        indent = "" if e.get("parent_span_id") is None else "  "
        ts = e["timestamp"][11:26]
        out(
            f"{ts} #{e['sequence']:<4} {indent}",
            c,
            f"{t:<26}",
            _RESET if c else _NONE,
            f" {_summary(e)}",
        )
    _note_torn_lines(args.file, torn)
    return EXIT_OK


def add_commands(sub: Any) -> None:
    """Adds `cra trace` and its subcommands to the CLI's subparsers."""
    trace = sub.add_parser("trace", help="work with TRACE files").add_subparsers(
        dest="trace_command", required=True
    )
    v = trace.add_parser(
        "verify", help="verify the hash chains of .trace.jsonl files, or of a stored session"
    )
    v.add_argument("files", nargs="*", metavar="FILE")
    v.add_argument("--json", action="store_true", help="machine-readable report")
    v.add_argument(
        "--anchor",
        default=None,
        metavar="FILE",
        help="verify chains from this anchor file (default: FILE.anchor.json beside FILE, if any)",
    )
    v.add_argument(
        "--store",
        default=None,
        metavar="PATH",
        help="verify a stored session instead (an SQLite file, a JSONL store directory or a postgresql:// URL)",
    )
    v.add_argument("--session", default=None, metavar="ID", help="the session, with --store")
    v.add_argument(
        "--public-key",
        default=None,
        metavar="PUB",
        help="also check the signed checkpoints with this public key (SPKI PEM): "
        "completeness, and how much of each chain signatures cover",
    )
    v.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="CP",
        help="a checkpoint kept elsewhere (GET /v1/traces/ID/checkpoint, saved by a witness): "
        "the chain must hold at least what it covers (with --public-key; repeatable)",
    )
    v.set_defaults(func=cmd_verify)
    proofs.add_trace_commands(trace)
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
    x.add_argument(
        "--store",
        required=True,
        help="an SQLite file, a JSONL store directory or a postgresql:// URL",
    )
    x.add_argument("--session", required=True, metavar="ID")
    x.add_argument("--out", default=None, metavar="FILE", help="default: standard output")
    x.set_defaults(func=cmd_export)
