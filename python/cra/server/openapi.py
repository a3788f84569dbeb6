"""The OpenAPI description: each operation's statuses and body, and the app's schema.

The app's schema is FastAPI's, without its stock 422 answers.
"""

from __future__ import annotations

from typing import Any, Dict, Union

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from .body import JSON

__all__ = ["BODY_ERRORS", "json_body", "responses", "schema"]

_WHAT = {
    200: "OK",
    201: "Created",
    202: "Waiting for a human approval (execute answer)",
    204: "Done; no body",
    400: "The request is invalid (error body)",
    401: "No API key, or an unknown one (error body)",
    403: "Denied by policy (execute answer), or the key's role may not do this "
    "(ROLE_FORBIDDEN, error body)",
    404: "Not found, or not visible to this key (error body)",
    409: "Conflict: duplicate request, idempotency key reused, atlas already loaded, session id taken",
    410: "Gone: the session ended or expired, or the resolution expired (error body)",
    413: "The request body is over the server's limit (error body)",
    415: "The request body is not JSON (error body)",
    422: "Parameters do not match the action's schema (execute answer)",
    429: "Rate limit or budget exhausted (execute answer), or too many pending (TOO_MANY_PENDING)",
    502: "The executor failed or there is none (execute answer)",
    503: "The trace cannot keep the request's events now (TRACE_UNAVAILABLE, Retry-After)",
}

#: What every operation with a JSON body may also answer.
BODY_ERRORS = (400, 413, 415)


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


def schema(app: FastAPI) -> Dict[str, Any]:
    """FastAPI's description of the routes, without the 422 it adds to every
    operation with parameters (query faults are answered 400 here)."""
    if app.openapi_schema is None:
        doc = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        for ops in doc.get("paths", {}).values():
            for op in ops.values():
                r422 = op.get("responses", {}).get("422", {})
                ref = str(r422.get("content", {}).get("application/json", {}).get("schema", {}))
                if "HTTPValidationError" in ref:
                    del op["responses"]["422"]
        schemas = doc.get("components", {}).get("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        app.openapi_schema = doc
    return app.openapi_schema
