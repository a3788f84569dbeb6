"""`cra atlas validate` (registered by `cli/atlas.py`) and `cra resolve`:
the command line of CARP."""

from __future__ import annotations

import argparse
import json
from typing import Any, Dict, List

from ..carp import now_timestamp
from ..errors import CraError
from ..runtime import Runtime
from .exits import EXIT_INVALID, EXIT_OK, EXIT_UNREADABLE
from .safe import err, out, out_json

__all__ = ["add_commands", "atlas_validate", "resolve"]


def atlas_validate(args: argparse.Namespace) -> int:
    """Loads each atlas in order (so later ones may depend on earlier ones)."""
    reports: List[Dict[str, Any]] = []
    worst = EXIT_OK
    with Runtime() as rt:
        for path in args.paths:
            try:
                info = rt.load_atlas(path)
                reports.append(
                    {
                        "path": path,
                        "valid": True,
                        "atlas_id": info.atlas_id,
                        "version": info.version,
                        "errors": [],
                    }
                )
            except CraError as e:
                errors = (
                    e.errors
                    if e.code in ("ATLAS_INVALID", "ATLAS_ALREADY_LOADED")
                    else [{"path": e.path or "", "message": e.message}]
                )
                reports.append({"path": path, "valid": False, "code": e.code, "errors": errors})
                worst = max(worst, EXIT_INVALID)
    if args.json:
        out_json(reports[0] if len(reports) == 1 else reports)
        return worst
    for r in reports:
        if r["valid"]:
            out(f"{r['path']}: valid — {r['atlas_id']} {r['version']}")
        else:
            out(f"{r['path']}: INVALID ({r['code']}, {len(r['errors'])} fault(s))")
            for f in r["errors"]:
                out(f"  {f['path'] or '(root)'}: {f['message']}")
    return worst


def resolve(args: argparse.Namespace) -> int:
    """Creates a session, resolves one request file, prints the resolution."""
    try:
        with open(args.request, encoding="utf-8") as f:
            request = json.load(f)
    except (OSError, ValueError) as e:
        err(f"error: cannot read request {args.request}: {e}")
        return EXIT_UNREADABLE
    if not isinstance(request, dict):
        err(f"error: {args.request} must hold a JSON object")
        return EXIT_UNREADABLE
    rt = Runtime(atlases=args.atlas, trace_file=args.trace_out)
    try:
        raw_requester, raw_task = request.get("requester"), request.get("task")
        requester: Dict[str, Any] = raw_requester if isinstance(raw_requester, dict) else {}
        task: Dict[str, Any] = raw_task if isinstance(raw_task, dict) else {}
        agent = str(requester.get("agent_id") or "cra-cli")
        goal = args.session_goal or str(task.get("goal") or "cra resolve")
        sid = rt.create_session(agent_id=agent, goal=goal)
        request = dict(request, requester=dict(requester, agent_id=agent, session_id=sid))
        if request.get("timestamp") in (None, "$now"):
            request["timestamp"] = now_timestamp()
        res = rt.resolve(request)
        out_json(res.to_dict())
        return EXIT_OK
    except CraError as e:
        out_json(e.to_dict(), to_stderr=True)
        return EXIT_INVALID
    finally:
        rt.close()


def add_commands(sub: Any) -> None:
    """Adds `cra resolve` to the CLI's subparsers (`cra atlas validate` is
    registered with the other atlas tools, in `cli/atlas.py`)."""
    rs = sub.add_parser("resolve", help="resolve one CARP request against atlases")
    rs.add_argument("--atlas", action="append", required=True, metavar="PATH")
    rs.add_argument("--request", required=True, metavar="FILE")
    rs.add_argument("--session-goal", default=None, metavar="TEXT")
    rs.add_argument("--trace-out", default=None, metavar="FILE")
    rs.set_defaults(func=resolve)
