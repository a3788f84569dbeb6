"""Sessions: create (201), list, read, end (204).

Every session id is read as a UUID and used in its canonical form
(`cra.server.ids`). With API keys, a caller cannot choose the id of a new
session: the server mints it, so creating a session never reveals whether
an id is in use. A session is owned by the key that created it from the
moment it exists: the owner row is written in the same store transaction as
the session's first event, and the answer (201) is sent only once that
transaction is committed; if it cannot be, the answer is 503
`TRACE_UNAVAILABLE` and the session is ended.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Literal, Optional

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ... import _core
from ...errors import ConflictError, CraError, NotFoundError
from ...storage import PostgresStore
from ..auth import AgentCaller, Caller, Principal
from ..body import json_response, read_object, string_fields
from ..errors import invalid
from ..ids import canonical_id
from ..openapi import BODY_ERRORS, json_body, responses
from ..state import ServerState, state_of

log = logging.getLogger("cra.server")

__all__ = ["router"]

router = APIRouter()


@router.post(
    "/v1/sessions",
    status_code=201,
    responses=responses(201, *BODY_ERRORS, 401, 403, 404, 409, 503),
    openapi_extra=json_body(),
)
async def create_session(request: Request, caller: Principal = AgentCaller) -> Response:
    """Starts a session owned by the calling key (records `session.started`)."""
    st = state_of(request)
    body = await read_object(request, st.config.max_body_bytes)
    f = string_fields(body, ("agent_id", "goal"), ("session_id", "parent_session_id"))
    parent, wanted = f["parent_session_id"], f["session_id"]
    if wanted is not None:
        if not caller.anonymous:
            raise invalid(
                "a session id cannot be chosen when API keys are configured; "
                "leave it out and the server mints one",
                "/session_id",
                code="SESSION_ID_NOT_ALLOWED",
            )
        wanted = canonical_id(wanted, "/session_id")
    if parent is not None:
        parent = canonical_id(parent, "/parent_session_id")
        await st.checked(parent, caller, "/parent_session_id")
    if wanted is not None and await run_in_threadpool(_stored, st, wanted):
        raise ConflictError(
            f"session {wanted} exists in the trace store", code="SESSION_EXISTS", path="/session_id"
        )
    assert f["agent_id"] is not None and f["goal"] is not None
    st.check_trace()
    sid = wanted or _core.new_id()
    if st.shared:
        # Claimed in the shared store before it exists, even without keys:
        # two replicas can never both create one id.
        await run_in_threadpool(st.owners.claim, sid, caller.key_id or "")
    elif caller.key_id is not None:
        st.owners.claim(sid, caller.key_id)
    try:
        st.runtime.create_session(
            f["agent_id"], f["goal"], session_id=sid, parent_session_id=parent
        )
    except ConflictError as e:  # the id is in use in this run
        st.owners.release(sid)
        e.details.setdefault("path", "/session_id")
        raise
    except CraError:
        st.owners.release(sid)
        raise
    try:
        await st.committer.after()
    except CraError:
        # Not acknowledged: end it, so that nobody holds an open session
        # they were never told about (both events are written later, with
        # the owner, when the store recovers).
        _end_quietly(st, sid, "not_acknowledged")
        raise
    return json_response(st.runtime.get_session(sid), 201)


def _end_quietly(st: ServerState, sid: str, reason: str) -> None:
    try:
        st.runtime.end_session(sid, reason)
    except CraError as e:
        log.error("cra serve: session %s could not be ended: %r", sid, e)


def _stored(st: ServerState, session_id: str) -> bool:
    # A reused id would collide with the stored chain and stall the store.
    return bool(st.store.events(session_id, limit=1))


@router.get("/v1/sessions", responses=responses(200, 400, 401))
async def list_sessions(
    request: Request,
    status: Optional[Literal["active", "ended"]] = None,
    limit: int = Query(100, ge=1, le=10_000),
    offset: int = Query(0, ge=0, le=1 << 62),
    caller: Principal = Caller,
) -> Response:
    """This server's sessions, oldest first: an agent key's own, or all of
    them for an approver or admin key."""
    st = state_of(request)
    if isinstance(st.store, PostgresStore):
        # Shared by replicas: every replica's sessions, as the store has them.
        owner = None if caller.sees_all else caller.key_id
        stored = await run_in_threadpool(st.store.session_rows_of, owner, status)
        rows = [_from_row(r) for r in stored]
    else:
        rows = st.runtime.list_sessions(status)
        if not caller.sees_all:
            rows = [r for r in rows if st.visible(r["session_id"], caller)]
    page = rows[offset : offset + limit]
    return json_response({"sessions": page, "total": len(rows), "limit": limit, "offset": offset})


@router.get("/v1/sessions/{session_id}", responses=responses(200, 400, 401, 404))
async def get_session(request: Request, session_id: str, caller: Principal = Caller) -> Response:
    """A session: ids, agent, goal, status and times (also from the store,
    for sessions of an earlier run of the server)."""
    st = state_of(request)
    session_id = canonical_id(session_id, "/path/session_id")
    await st.checked(session_id, caller)
    try:
        return json_response(st.runtime.get_session(session_id))
    except NotFoundError:
        row = await run_in_threadpool(_stored_session, st, session_id)
        return json_response(row)


def _stored_session(st: ServerState, session_id: str) -> Dict[str, Any]:
    if not st.store.events(session_id, limit=1):
        raise st.not_found(session_id)
    return _from_row(st.store.session(session_id))


def _from_row(r: Dict[str, Any]) -> Dict[str, Any]:
    """A session as the API shows it, from the store's row (the parent and
    the end reason are not stored)."""
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
    "/v1/sessions/{session_id}",
    status_code=204,
    responses=responses(204, 400, 401, 403, 404, 410, 503),
)
async def end_session(
    request: Request,
    session_id: str,
    reason: str = Query("completed", min_length=1, max_length=1000),
    caller: Principal = AgentCaller,
) -> Response:
    """Ends a session (records `session.ended`); it accepts nothing more."""
    st = state_of(request)
    session_id = canonical_id(session_id, "/path/session_id")
    await st.checked(session_id, caller)
    await st.traced(st.runtime.end_session, session_id, reason)
    return Response(status_code=204)
