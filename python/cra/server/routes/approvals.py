"""Approvals: decide on one (grant or reject), list those waiting.

Only approver and admin keys decide, on any session's approvals; the
approver recorded in the trace is the deciding key's name (free text goes
in `note`). Without keys the caller is anonymous and names the approver in
the body, as before. Listing is open to every role: an agent key sees the
approvals of its own sessions, approver and admin keys those of all.
"""

from __future__ import annotations

from typing import Optional

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ...storage import PostgresStore
from ..auth import ApproverCaller, Caller, Principal
from ..body import json_response, read_object, string_fields
from ..errors import invalid
from ..ids import canonical_id
from ..openapi import BODY_ERRORS, json_body, responses
from ..state import state_of

__all__ = ["router"]

router = APIRouter()

_GRANT_ONLY = ("action_id", "parameters_hash", "scope")


@router.post(
    "/v1/approvals/{approval_id}",
    responses=responses(200, *BODY_ERRORS, 401, 403, 404, 410, 503),
    openapi_extra=json_body(),
)
async def decide(
    request: Request, approval_id: str, caller: Principal = ApproverCaller
) -> Response:
    """Grants or rejects an approval. A grant covers the waiting action with
    exactly its parameters, once, unless `scope` is `resolution`."""
    st = state_of(request)
    approval_id = canonical_id(approval_id, "/path/approval_id")
    body = await read_object(request, st.config.max_body_bytes)
    if caller.anonymous:
        f = string_fields(body, ("decision", "approver"), ("note", *_GRANT_ONLY))
        approver = f["approver"]
        assert approver is not None
    else:
        if "approver" in body:
            raise invalid(
                f"the approver is the name of the deciding API key ({caller.name}) and "
                "cannot be given; put free text in note",
                "/approver",
                code="APPROVER_NOT_ALLOWED",
            )
        f = string_fields(body, ("decision",), ("note", *_GRANT_ONLY))
        approver = caller.name
    note = f["note"]
    if isinstance(st.store, PostgresStore):
        # Decided here, recorded in the session's chain: continue it here.
        sid = await run_in_threadpool(st.store.approval_session, approval_id)
        if sid is not None:
            await run_in_threadpool(st.adopt, sid)
    if f["decision"] == "grant":
        out = await st.traced(
            lambda: st.runtime.approve(
                approval_id,
                approver,
                note=note,
                action_id=f["action_id"],
                parameters_hash=f["parameters_hash"],
                scope=f["scope"] or "once",
            )
        )
    elif f["decision"] == "reject":
        given = [k for k in _GRANT_ONLY if f[k] is not None]
        if given:
            raise invalid("applies only to a grant", f"/{given[0]}")
        out = await st.traced(lambda: st.runtime.reject(approval_id, approver, note=note))
    else:
        raise invalid('must be "grant" or "reject"', "/decision")
    return json_response(out)


@router.get("/v1/approvals", responses=responses(200, 400, 401, 404))
async def pending(
    request: Request,
    session_id: Optional[str] = Query(None, max_length=200),
    caller: Principal = Caller,
) -> Response:
    """Executions waiting for a human decision, oldest first."""
    st = state_of(request)
    if session_id is not None:
        session_id = canonical_id(session_id, "/query/session_id")
        await st.checked(session_id, caller, "/query/session_id")
    if st.shared:
        rows = await run_in_threadpool(st.runtime.pending_approvals, session_id)
    else:
        rows = st.runtime.pending_approvals(session_id)
    if not caller.sees_all:
        if st.shared:  # owners may be looked up in the shared store
            rows = await run_in_threadpool(
                lambda: [r for r in rows if st.visible(r["session_id"], caller)]
            )
        else:
            rows = [r for r in rows if st.visible(r["session_id"], caller)]
    return json_response({"approvals": rows})
