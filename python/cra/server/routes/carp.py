"""CARP over HTTP: resolve, execute, validate.

The body is the CARP/1.0 request itself; the runtime checks it. Before the
runtime sees it, the server reads its session, parent session and
resolution ids as UUIDs and rewrites them in canonical form
(`cra.server.ids`), and, for an agent key, checks that the session (and
the parent, if named) belongs to the calling key; so a foreign key cannot
even add an `error.occurred` event to another key's chain. Only agent and
admin keys may call these operations.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional, Tuple

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ...errors import CraError
from ..auth import AgentCaller, Principal
from ..body import CARP, json_response, negotiate, read_object
from ..ids import canonical_request
from ..openapi import BODY_ERRORS, json_body, responses
from ..state import ServerState, state_of

__all__ = ["router"]

router = APIRouter()

#: Errors a CARP request itself can cause (§8): invalid, unknown session or
#: resolution, duplicate request id or idempotency conflict, ended session;
#: and a key whose role may not call CARP operations (403).
REQUEST_ERRORS = (*BODY_ERRORS, 401, 403, 404, 409, 410)


def _admit(st: ServerState, request: Dict[str, Any], caller: Principal) -> Optional[CraError]:
    """Canonical ids in the request, and the caller's right to its sessions:
    None when the request may go to the runtime, else the error to answer
    (carrying the request's `request_id`)."""
    err: Optional[CraError] = canonical_request(request)
    if err is None:
        requester = request.get("requester")
        if isinstance(requester, dict):
            try:
                for name in ("session_id", "parent_session_id"):
                    sid = requester.get(name)
                    if isinstance(sid, str):
                        st.require_session(sid, caller, f"/requester/{name}")
            except CraError as e:
                err = e
    if err is not None:
        rid = request.get("request_id")
        err.request_id = rid if isinstance(rid, str) else None
    return err


def _check(st: ServerState, request: Dict[str, Any], caller: Principal) -> None:
    err = _admit(st, request, caller)
    if err is not None:
        raise err


@router.post(
    "/v1/resolve",
    responses=responses(200, *REQUEST_ERRORS, 429, 503),
    openapi_extra=json_body(CARP, "application/json"),
)
async def resolve(request: Request, caller: Principal = AgentCaller) -> Response:
    """Resolves a CARP request: the allowed and denied actions, context, constraints."""
    st = state_of(request)
    body = await read_object(request, st.config.max_body_bytes)
    text = await st.traced(resolve_answer, st, body, caller)
    return json_response(text, media_type=negotiate(request.headers, CARP))


def resolve_answer(st: ServerState, body: Dict[str, Any], caller: Principal) -> str:
    """The resolution of a request body, as JSON text (shared with the fast
    path, which checks the caller's role itself). Called through
    `ServerState.traced`, which answers only once its events are written."""
    _check(st, body, caller)
    return st.runtime.resolve(body).to_json()


@router.post(
    "/v1/execute",
    responses=responses(200, 202, 403, 422, 429, 502, 503, *REQUEST_ERRORS),
    openapi_extra=json_body(CARP, "application/json"),
)
async def execute(request: Request, caller: Principal = AgentCaller) -> Response:
    """Executes an action of a resolution; the status says how it went
    (200 success, 202 pending approval, 403 denied, 429 limited, 422 bad
    parameters, 502 executor failure)."""
    st = state_of(request)
    body = await read_object(request, st.config.max_body_bytes)
    status, headers, text = await execute_answer(st, body, caller)
    return json_response(text, status, negotiate(request.headers, CARP), headers=headers)


async def execute_answer(
    st: ServerState, body: Dict[str, Any], caller: Principal
) -> Tuple[int, Dict[str, str], str]:
    """Status, headers and JSON text of an execute (shared with the fast
    path): the executor runs in the thread pool, and the answer is sent
    once the execution's events are written."""
    if st.shared:  # the check may query the shared store
        await run_in_threadpool(_check, st, body, caller)
    else:
        _check(st, body, caller)
    answer = await st.traced_async(lambda: run_in_threadpool(st.runtime.execute, body))
    headers: Dict[str, str] = {}
    retry = answer.retry_after
    if answer.http_status == 429 and retry is not None and math.isfinite(retry):
        headers["Retry-After"] = str(max(1, math.ceil(retry)))
    return answer.http_status, headers, answer.to_json()


@router.post(
    "/v1/validate",
    responses=responses(200, *BODY_ERRORS, 401, 403, 404, 503),
    openapi_extra=json_body(CARP, "application/json"),
)
async def validate(request: Request, caller: Principal = AgentCaller) -> Response:
    """Checks a request without acting: `{"valid", "errors": [{path, message}]}`.
    An id that is not a UUID is an invalid request (200, `valid: false`);
    another key's session is 404, as for resolve."""
    st = state_of(request)
    body = await read_object(request, st.config.max_body_bytes)
    media = negotiate(request.headers, CARP)
    if st.shared:  # the check may query the shared store
        err = await run_in_threadpool(_admit, st, body, caller)
    else:
        err = _admit(st, body, caller)
    if err is not None and err.http_status == 400:
        return json_response({"valid": False, "errors": err.errors}, media_type=media)
    if err is not None:
        raise err
    return json_response(await st.traced(st.runtime.validate, body), media_type=media)
