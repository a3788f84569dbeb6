"""What every route module uses: the server state of a request, the caller
dependency, and the OpenAPI notes (status codes, bodies) of an operation."""

from __future__ import annotations

from typing import Any, Dict, Union

from fastapi import Depends, Request

from .auth import caller
from .body import JSON
from .state import ServerState

__all__ = ["Caller", "json_body", "responses", "state_of"]

#: The caller's key id (None without keys); declares the security schemes.
Caller = Depends(caller)

_WHAT = {
    200: "OK",
    201: "Created",
    202: "Waiting for a human approval (execute answer)",
    204: "Done; no body",
    400: "The request is invalid (error body)",
    401: "No API key, or an unknown one (error body)",
    403: "Denied by policy (execute answer)",
    404: "Not found, or not visible to this key (error body)",
    409: "Conflict: duplicate request, idempotency key reused, atlas already loaded, session id taken",
    410: "Gone: the session ended or expired, or the resolution expired (error body)",
    413: "The request body is over the server's limit (error body)",
    415: "The request body is not JSON (error body)",
    422: "Parameters do not match the action's schema (execute answer)",
    429: "Rate limit or budget exhausted (execute answer)",
    502: "The executor failed or there is none (execute answer)",
}

#: What every operation with a JSON body may also answer.
BODY_ERRORS = (400, 413, 415)


def state_of(request: Request) -> ServerState:
    """The server state of the app serving `request`."""
    st: ServerState = request.app.state.cra
    return st


def responses(*codes: int) -> Dict[Union[int, str], Dict[str, Any]]:
    """OpenAPI `responses` entries for the given statuses."""
    return {code: {"description": _WHAT[code]} for code in codes}


def json_body(*media: str, required: bool = True) -> Dict[str, Any]:
    """OpenAPI request body of a JSON object (read by the route itself)."""
    types = media or (JSON,)
    return {
        "requestBody": {
            "required": required,
            "content": {m: {"schema": {"type": "object"}} for m in types},
        }
    }
