"""CARP over HTTP: resolve, execute, validate.

The body is the CARP/1.0 request itself; the runtime checks it. With API
keys, the request's session must belong to the calling key (checked before
the runtime sees the request, so a foreign key cannot even add an
`error.occurred` event to another key's chain).
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ...errors import CraError
from ..auth import Caller
from ..body import CARP, json_response, negotiate, read_object
from ..openapi import BODY_ERRORS, json_body, responses
from ..state import ServerState, state_of

__all__ = ["router"]

router = APIRouter()

#: Errors a CARP request itself can cause (§8): invalid, unknown session or
#: resolution, duplicate request id or idempotency conflict, ended session.
REQUEST_ERRORS = (*BODY_ERRORS, 401, 404, 409, 410)


def _check_owner(st: ServerState, request: Dict[str, Any], caller: Optional[str]) -> None:
    if caller is None:
        return
    requester = request.get("requester")
    sid = requester.get("session_id") if isinstance(requester, dict) else None
    if isinstance(sid, str):
        try:
            st.require_session(sid, caller, "/requester/session_id")
        except CraError as e:
            rid = request.get("request_id")
            e.request_id = rid if isinstance(rid, str) else None
            raise


@router.post(
    "/v1/resolve",
    responses=responses(200, *REQUEST_ERRORS),
    openapi_extra=json_body(CARP, "application/json"),
)
async def resolve(request: Request, caller: Optional[str] = Caller) -> Response:
    """Resolves a CARP request: the allowed and denied actions, context, constraints."""
    st = state_of(request)
    body = await read_object(request, st.config.max_body_bytes)
    return json_response(
        resolve_answer(st, body, caller), media_type=negotiate(request.headers, CARP)
    )


def resolve_answer(st: ServerState, body: Dict[str, Any], caller: Optional[str]) -> str:
    """The resolution of a request body, as JSON text (shared with the fast path)."""
    _check_owner(st, body, caller)
    res = st.runtime.resolve(body)
    if caller is not None:
        approval_id = res.decision.approval_id
        if approval_id is not None:
            st.owners.note_approval(approval_id, res.session_id)
    return res.to_json()


@router.post(
    "/v1/execute",
    responses=responses(200, 202, 403, 422, 429, 502, *REQUEST_ERRORS),
    openapi_extra=json_body(CARP, "application/json"),
)
async def execute(request: Request, caller: Optional[str] = Caller) -> Response:
    """Executes an action of a resolution; the status says how it went
    (200 success, 202 pending approval, 403 denied, 429 limited, 422 bad
    parameters, 502 executor failure)."""
    st = state_of(request)
    body = await read_object(request, st.config.max_body_bytes)
    _check_owner(st, body, caller)
    answer = await run_in_threadpool(st.runtime.execute, body)
    headers = {}
    retry = answer.retry_after
    if answer.http_status == 429 and retry is not None and math.isfinite(retry):
        headers["Retry-After"] = str(max(1, math.ceil(retry)))
    return json_response(
        answer.to_dict(), answer.http_status, negotiate(request.headers, CARP), headers=headers
    )


@router.post(
    "/v1/validate",
    responses=responses(200, *BODY_ERRORS, 401, 404),
    openapi_extra=json_body(CARP, "application/json"),
)
async def validate(request: Request, caller: Optional[str] = Caller) -> Response:
    """Checks a request without acting: `{"valid", "errors": [{path, message}]}`."""
    st = state_of(request)
    body = await read_object(request, st.config.max_body_bytes)
    _check_owner(st, body, caller)
    return json_response(st.runtime.validate(body), media_type=negotiate(request.headers, CARP))
