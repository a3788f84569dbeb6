"""Approvals: decide on one (grant or reject), list those waiting."""

from __future__ import annotations

from typing import Optional

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from ...errors import NotFoundError
from ..auth import Caller
from ..body import json_response, read_object, string_fields
from ..errors import invalid
from ..openapi import BODY_ERRORS, json_body, responses
from ..state import state_of

__all__ = ["router"]

router = APIRouter()

_GRANT_ONLY = ("action_id", "parameters_hash", "scope")


@router.post(
    "/v1/approvals/{approval_id}",
    responses=responses(200, *BODY_ERRORS, 401, 404, 410),
    openapi_extra=json_body(),
)
async def decide(request: Request, approval_id: str, caller: Optional[str] = Caller) -> Response:
    """Grants or rejects an approval. A grant covers the waiting action with
    exactly its parameters, once, unless `scope` is `resolution`."""
    st = state_of(request)
    body = await read_object(request, st.config.max_body_bytes)
    f = string_fields(body, ("decision", "approver"), ("note", *_GRANT_ONLY))
    if caller is not None:
        sid = st.owners.approval_session(approval_id)
        if sid is None or st.owners.owner(sid) != caller:
            raise NotFoundError(
                f"approval {approval_id} not found", code="APPROVAL_NOT_FOUND", path="/approval_id"
            )
    approver, note = f["approver"], f["note"]
    assert approver is not None
    if f["decision"] == "grant":
        out = st.runtime.approve(
            approval_id,
            approver,
            note=note,
            action_id=f["action_id"],
            parameters_hash=f["parameters_hash"],
            scope=f["scope"] or "once",
        )
    elif f["decision"] == "reject":
        given = [k for k in _GRANT_ONLY if f[k] is not None]
        if given:
            raise invalid("applies only to a grant", f"/{given[0]}")
        out = st.runtime.reject(approval_id, approver, note=note)
    else:
        raise invalid('must be "grant" or "reject"', "/decision")
    return json_response(out)


@router.get("/v1/approvals", responses=responses(200, 400, 401, 404))
async def pending(
    request: Request,
    session_id: Optional[str] = Query(None, max_length=200),
    caller: Optional[str] = Caller,
) -> Response:
    """Executions waiting for a human decision, oldest first."""
    st = state_of(request)
    if session_id is not None:
        st.require_session(session_id, caller, "/query/session_id")
    rows = st.runtime.pending_approvals(session_id)
    if caller is not None and session_id is None:
        rows = [r for r in rows if st.owners.owner(r["session_id"]) == caller]
    return json_response({"approvals": rows})
