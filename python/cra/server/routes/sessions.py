"""Sessions: create (201), list, read, end (204)."""

from __future__ import annotations

from typing import Any, Dict, Literal, Optional

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ...errors import ConflictError, NotFoundError
from ..auth import Caller
from ..body import json_response, read_object, string_fields
from ..openapi import BODY_ERRORS, json_body, responses
from ..state import ServerState, state_of

__all__ = ["router"]

router = APIRouter()


@router.post(
    "/v1/sessions",
    status_code=201,
    responses=responses(201, *BODY_ERRORS, 401, 404, 409),
    openapi_extra=json_body(),
)
async def create_session(request: Request, caller: Optional[str] = Caller) -> Response:
    """Starts a session owned by the calling key (records `session.started`)."""
    st = state_of(request)
    body = await read_object(request, st.config.max_body_bytes)
    f = string_fields(body, ("agent_id", "goal"), ("session_id", "parent_session_id"))
    parent, wanted = f["parent_session_id"], f["session_id"]
    if parent is not None:
        st.require_session(parent, caller, "/parent_session_id")
    if wanted is not None and await run_in_threadpool(_stored, st, wanted):
        raise ConflictError(
            f"session {wanted} exists in the trace store", code="SESSION_EXISTS", path="/session_id"
        )
    assert f["agent_id"] is not None and f["goal"] is not None
    sid = st.runtime.create_session(
        f["agent_id"], f["goal"], session_id=wanted, parent_session_id=parent
    )
    if caller is not None:
        st.owners.claim(sid, caller)
    return json_response(st.runtime.get_session(sid), 201)


def _stored(st: ServerState, session_id: str) -> bool:
    # A reused id would collide with the stored chain and stall the store.
    return bool(st.store.events(session_id, limit=1))


@router.get("/v1/sessions", responses=responses(200, 400, 401))
async def list_sessions(
    request: Request,
    status: Optional[Literal["active", "ended"]] = None,
    limit: int = Query(100, ge=1, le=10_000),
    offset: int = Query(0, ge=0, le=1 << 62),
    caller: Optional[str] = Caller,
) -> Response:
    """This server's sessions, oldest first, that the calling key owns."""
    st = state_of(request)
    rows = st.runtime.list_sessions(status)
    if caller is not None:
        rows = [r for r in rows if st.owners.owner(r["session_id"]) == caller]
    page = rows[offset : offset + limit]
    return json_response({"sessions": page, "total": len(rows), "limit": limit, "offset": offset})


@router.get("/v1/sessions/{session_id}", responses=responses(200, 400, 401, 404))
async def get_session(
    request: Request, session_id: str, caller: Optional[str] = Caller
) -> Response:
    """A session: ids, agent, goal, status and times (also from the store,
    for sessions of an earlier run of the server)."""
    st = state_of(request)
    st.require_session(session_id, caller)
    try:
        return json_response(st.runtime.get_session(session_id))
    except NotFoundError:
        row = await run_in_threadpool(_stored_session, st, session_id)
        return json_response(row)


def _stored_session(st: ServerState, session_id: str) -> Dict[str, Any]:
    if not st.store.events(session_id, limit=1):
        raise st.not_found(session_id)
    r = st.store.session(session_id)
    return {
        "session_id": r["session_id"],
        "trace_id": r["trace_id"],
        "root_span_id": r["root_span_id"],
        "agent_id": r["agent_id"],
        "goal": r["goal"],
        "parent_session_id": None,
        "status": r["status"],
        "created_at": r["started_at"],
        "ended_at": r["ended_at"],
        "end_reason": None,
    }


@router.delete(
    "/v1/sessions/{session_id}", status_code=204, responses=responses(204, 400, 401, 404, 410)
)
async def end_session(
    request: Request,
    session_id: str,
    reason: str = Query("completed", min_length=1, max_length=1000),
    caller: Optional[str] = Caller,
) -> Response:
    """Ends a session (records `session.ended`); it accepts nothing more."""
    st = state_of(request)
    st.require_session(session_id, caller)
    st.runtime.end_session(session_id, reason)
    return Response(status_code=204)
