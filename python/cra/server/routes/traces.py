"""Traces: a session's stored events and the verification of its stored chain.

They are read from the durable store after a flush (so every event
recorded before the request is there); events come filtered, as a JSON
array or NDJSON. An agent key reads its own sessions' traces; approver and
admin keys read any session's."""

from __future__ import annotations

import json
import logging
from typing import Any, Dict, List, Optional

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ... import _core
from ...errors import CraError, IntegrityError, NotFoundError
from ..auth import Caller, Principal
from ..body import NDJSON, TRACE, TRACE_JSONL, accepted, json_response
from ..ids import canonical_id
from ..openapi import responses
from ..state import ServerState, state_of

__all__ = ["router"]

router = APIRouter()

log = logging.getLogger("cra.server")

_MAX_SEQUENCE = 1 << 62


def _settled(st: ServerState, session_id: str) -> None:
    """Waits until what was recorded is in the store; 404 for an unknown session."""
    st.runtime.flush(st.config.shutdown_timeout)
    if not st.store.events(session_id, limit=1):
        raise st.not_found(session_id)


def _events(
    st: ServerState,
    session_id: str,
    event_type: Optional[str],
    since: Optional[int],
    limit: Optional[int],
) -> List[Dict[str, Any]]:
    _settled(st, session_id)
    return st.store.events(session_id, event_type, since, limit)


@router.get(
    "/v1/traces/{session_id}",
    responses=responses(200, 400, 401, 404),
    response_class=Response,
)
async def trace(
    request: Request,
    session_id: str,
    event_type: Optional[str] = Query(None, min_length=1, max_length=200),
    since_sequence: Optional[int] = Query(None, ge=0, le=_MAX_SEQUENCE),
    limit: Optional[int] = Query(None, ge=0, le=_MAX_SEQUENCE),
    caller: Principal = Caller,
) -> Response:
    """A session's events in sequence order: a JSON array, or one event per
    line with `Accept: application/x-ndjson` (or the TRACE JSON Lines type)."""
    st = state_of(request)
    session_id = canonical_id(session_id, "/path/session_id")
    await st.checked(session_id, caller)
    events = await run_in_threadpool(_events, st, session_id, event_type, since_sequence, limit)
    lines = _lines_type(request)
    if lines is not None:
        text = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events)
        return Response(text, 200, media_type=lines)
    media = TRACE if TRACE in accepted(request.headers) else "application/json"
    return json_response(events, media_type=media)


def _lines_type(request: Request) -> Optional[str]:
    for media in accepted(request.headers):
        if media in (NDJSON, TRACE_JSONL):
            return media
        if media in ("application/json", TRACE):
            return None
    return None


def _unreadable(st: ServerState, session_id: str, error: IntegrityError) -> Dict[str, Any]:
    """The verification of a chain with a stored event that is not a TRACE
    event (corrupted rows): `valid: false`, kind `invalid_event`."""
    where = str(error.details.get("path") or "").lstrip("/")
    index = int(where) if where.isdigit() else None
    try:
        count = int(st.store.session(session_id).get("event_count") or 0)
    except (CraError, TypeError, ValueError):
        count = 0
    log.warning("session %s: stored chain unreadable: %s", session_id, error.message)
    at = f" at index {index}" if index is not None else ""
    return {
        "session_id": session_id,
        "valid": False,
        "error": "invalid_event",
        "index": index,
        "message": f"the stored event{at} is not a readable TRACE event",
        "event_count": max(count, (index or 0) + 1 if index is not None else 0),
        "algorithm": None,
        "source": "store",
        "signatures": None,
        "anchored_at": None,
        "retention_cut": None,
        "expected": None,
        "found": None,
    }


def _verify(st: ServerState, session_id: str) -> Dict[str, Any]:
    _settled(st, session_id)
    try:
        v = st.store.verify(session_id)
    except IntegrityError as e:
        return _unreadable(st, session_id, e)
    signatures = _signatures(st, session_id)
    return {
        "session_id": session_id,
        "valid": v.valid and not (signatures or {}).get("faults"),
        "signatures": signatures,
        "error": v.error,
        "index": v.index,
        "message": v.message,
        "event_count": v.event_count,
        "algorithm": v.algorithm,
        "source": "store",
        "anchored_at": v.anchored_at,
        "retention_cut": v.retention_cut,
        "expected": v.expected,
        "found": v.found,
    }


def _signatures(st: ServerState, session_id: str) -> Optional[Dict[str, Any]]:
    """With a signing key, the stored chain's signed checkpoints checked
    with its public half; None when the server does not sign (completeness
    not checked)."""
    if st.config.signing_key is None:
        return None
    texts = [json.dumps(e) for e in st.store.events(session_id)]
    report: Dict[str, Any] = _core.check_signatures(texts, st.config.signing_key)
    return report


async def _verify_route(request: Request, session_id: str, caller: Principal) -> Response:
    st = state_of(request)
    session_id = canonical_id(session_id, "/path/session_id")
    await st.checked(session_id, caller)
    return json_response(await run_in_threadpool(_verify, st, session_id))


@router.get("/v1/traces/{session_id}/verify", responses=responses(200, 400, 401, 404))
async def verify(request: Request, session_id: str, caller: Principal = Caller) -> Response:
    """Verifies the session's stored chain and its row (a cut tail is
    `truncated`, a moved anchor `unrecorded_cut`); a broken chain is a
    result (`valid: false` with the first fault), not an error. A chain cut
    by retention reports `anchored_at` and `retention_cut`."""
    return await _verify_route(request, session_id, caller)


@router.post("/v1/traces/{session_id}/verify", responses=responses(200, 400, 401, 404))
async def verify_post(request: Request, session_id: str, caller: Principal = Caller) -> Response:
    """The same as GET, for clients that treat verification as an action."""
    return await _verify_route(request, session_id, caller)


def _checkpoint(st: ServerState, session_id: str) -> Dict[str, Any]:
    _settled(st, session_id)
    found = st.store.events(session_id, "trace.checkpoint")
    if not found:
        why = (
            "this server does not sign checkpoints (start it with --signing-key)"
            if st.config.signing_key is None
            else "the session has no checkpoint yet"
        )
        raise NotFoundError(f"session {session_id}: {why}", code="CHECKPOINT_NOT_FOUND")
    return found[-1]


@router.get("/v1/traces/{session_id}/checkpoint", responses=responses(200, 400, 401, 404))
async def checkpoint(request: Request, session_id: str, caller: Principal = Caller) -> Response:
    """The session's latest signed checkpoint (its `trace.checkpoint` event),
    for a witness to keep outside this machine; 404 `CHECKPOINT_NOT_FOUND`
    when the server does not sign or the session has none yet."""
    st = state_of(request)
    session_id = canonical_id(session_id, "/path/session_id")
    await st.checked(session_id, caller)
    return json_response(await run_in_threadpool(_checkpoint, st, session_id))
