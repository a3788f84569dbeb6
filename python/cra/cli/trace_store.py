"""`cra trace verify --store` and `cra trace export`: a session read from a
store (an SQLite file, a JSONL store directory or a `postgresql://` URL)
rather than from a `.trace.jsonl` file."""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
from typing import Any, Dict, Optional

from ..errors import CraError
from ..trace import ChainVerification
from .exits import EXIT_INVALID, EXIT_OK, EXIT_UNREADABLE, EXIT_USAGE
from .safe import err, out, out_json, out_json_text

__all__ = ["cmd_export", "verify_store"]


def _store_verification_json(store_path: str, v: ChainVerification) -> Dict[str, Any]:
    return {
        "store": store_path,
        "session_id": v.session_id,
        "valid": v.valid,
        "error": v.error,
        "index": v.index,
        "message": v.message,
        "event_count": v.event_count,
        "algorithm": v.algorithm,
        "anchored_at": v.anchored_at,
        "retention_cut": v.retention_cut,
        "expected": v.expected,
        "found": v.found,
    }


def _print_store_verification(store_path: str, v: ChainVerification) -> None:
    verdict = "VALID" if v.valid else "INVALID"
    out(f"{store_path}: {verdict} — session {v.session_id}, {v.event_count} stored event(s)")
    cut = v.retention_cut
    if v.anchored_at is not None and cut is not None:
        when = (
            f", cut recorded {cut['cut_at']} by {cut['recorded_by']}"
            if cut.get("cut_at")
            else ", no recorded cut matches"
        )
        out(
            f"  cut   the chain starts at sequence {v.anchored_at}: the "
            f"{cut['removed_events']} event(s) before it were removed by retention{when}"
        )
    if v.valid:
        out(f"  ok    {v.session_id}  ({v.algorithm or 'unknown hash'})")
        return
    where = "" if v.index is None else f" at event {v.index}"
    out(f"  FAIL  {v.session_id}  {v.error}{where}: {v.message}")
    if v.expected is not None or v.found is not None:
        out(f"        expected {json.dumps(v.expected)}, found {json.dumps(v.found)}")


def _open_store(address: str) -> Any:
    """A JSONL store for a directory, else `open_store` (SQLite, or
    PostgreSQL read with whatever schema version it has)."""
    from ..storage import JSONLStore, open_store

    return JSONLStore(address) if os.path.isdir(address) else open_store(address, ready=False)


def verify_store(args: argparse.Namespace) -> int:
    if args.files or args.anchor is not None or not args.session:
        err("error: --store goes with --session ID, and no FILE or --anchor")
        return EXIT_USAGE
    try:
        store = _open_store(args.store)
        v = store.verify(args.session)
    except CraError as e:
        err(f"error: {e.message} ({args.store})")
        return EXIT_UNREADABLE
    except (sqlite3.Error, OSError, ValueError, KeyError, TypeError, RecursionError) as e:
        err(f"error: cannot read the store {args.store}: {type(e).__name__}: {e}")
        return EXIT_UNREADABLE
    if args.json:
        out_json(_store_verification_json(args.store, v))
    else:
        _print_store_verification(args.store, v)
    return EXIT_OK if v.valid else EXIT_INVALID


def _first_sequence(text: str) -> Optional[int]:
    try:
        seq = json.loads(text).get("sequence")
    except (ValueError, AttributeError, RecursionError):
        return None
    return seq if isinstance(seq, int) else None


def cmd_export(args: argparse.Namespace) -> int:
    try:
        store = _open_store(args.store)
        if args.out:
            try:
                anchor = store.export(args.session, args.out)
            except CraError as e:
                err(f"error: {e.message} ({args.store})")
                return EXIT_UNREADABLE
            if anchor is not None:
                err(
                    f"{args.out}: the session's chain starts at sequence {anchor['first_sequence']} "
                    f"(older events were removed by retention); its anchor is in {args.out}.anchor.json"
                )
            return EXIT_OK
        texts = store._event_texts(args.session)
    except (sqlite3.Error, ValueError, KeyError, TypeError, RecursionError) as e:
        # A store whose content is not what the runtime writes (bad JSON, not UTF-8, not SQLite).
        err(f"error: cannot read the store {args.store}: {type(e).__name__}: {e}")
        return EXIT_UNREADABLE
    if not texts:
        err(f"error: no events for session {args.session} in {args.store}")
        return EXIT_UNREADABLE
    for text in texts:
        out_json_text(text)
    first = _first_sequence(texts[0])
    if first:
        err(
            f"note: the session's chain starts at sequence {first} (older events "
            "were removed by retention); export with --out FILE to get the anchor file "
            "FILE.anchor.json that verification needs"
        )
    return EXIT_OK
