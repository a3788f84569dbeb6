"""Every failure of the HTTP layer answered in the protocol's error shape:
`{"error": {code, message, category, recoverable, details, request_id}}`.

The runtime's exceptions carry their own code, category and status; what
FastAPI and Starlette raise (unknown route, wrong method, bad query
parameter) is translated; anything unforeseen is a 500 in the same shape.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Dict, List, Optional

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from ..errors import CraError, InternalError, NotFoundError, ValidationError

__all__ = [
    "PayloadTooLarge",
    "UnsupportedMediaType",
    "error_response",
    "install_handlers",
    "invalid",
]

log = logging.getLogger("cra.server")


class PayloadTooLarge(ValidationError):
    """A request body over the server's limit."""

    http_status = 413


class UnsupportedMediaType(ValidationError):
    """A request body that is declared as something other than JSON."""

    http_status = 415


class MethodNotAllowed(ValidationError):
    http_status = 405


def invalid(message: str, path: str = "", code: str = "INVALID_REQUEST") -> ValidationError:
    """A 400 for a request the server itself refuses."""
    return ValidationError(message, code=code, path=path or None)


def _request_id(request: Request) -> Optional[str]:
    rid = request.headers.get("x-request-id")
    return rid if rid and len(rid) <= 200 else None


def error_response(error: CraError, request: Optional[Request] = None) -> Response:
    """The §8 body of an error, with its status and headers."""
    if error.request_id is None and request is not None:
        error.request_id = _request_id(request)
    headers: Dict[str, str] = {}
    if error.http_status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="cra", ApiKey header="X-API-Key"'
    retry = error.details.get("retry_after")
    if error.http_status == 429 and isinstance(retry, (int, float)) and math.isfinite(retry):
        headers["Retry-After"] = str(max(0, math.ceil(retry)))
    allow = error.details.get("allow")
    if error.http_status == 405 and isinstance(allow, str):
        headers["Allow"] = allow
    body = json.dumps(error.to_dict(), separators=(",", ":"))
    return Response(body, error.http_status, headers, media_type="application/json")


async def _cra_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CraError)
    return error_response(exc, request)


async def _query_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    faults: List[Dict[str, str]] = []
    for e in exc.errors():
        path = "/" + "/".join(str(p) for p in e.get("loc", ()))
        faults.append({"path": path, "message": str(e.get("msg", "is invalid"))})
    first = faults[0] if faults else {"path": "", "message": "is invalid"}
    message = f"{first['path']}: {first['message']}"
    if len(faults) > 1:
        message += f" (and {len(faults) - 1} more)"
    err = ValidationError(message, code="INVALID_REQUEST", path=first["path"] or None)
    err.details["errors"] = faults
    return error_response(err, request)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    err: CraError
    if exc.status_code == 404:
        err = NotFoundError(f"no endpoint at {request.url.path}", code="NOT_FOUND")
    elif exc.status_code == 405:
        allow = (exc.headers or {}).get("Allow", "")
        err = MethodNotAllowed(
            f"{request.method} is not allowed on {request.url.path}",
            code="METHOD_NOT_ALLOWED",
            details={"allow": allow},
        )
    elif 400 <= exc.status_code < 500:
        err = invalid(str(exc.detail))
        err.http_status = exc.status_code
    else:
        err = InternalError(str(exc.detail), code="INTERNAL_ERROR")
    return error_response(err, request)


async def _input_error(request: Request, exc: Exception) -> Response:
    """Python's refusals of a value that came from the request (a lone
    surrogate, nesting too deep, a number too large) are the client's fault."""
    kind = type(exc).__name__
    return error_response(
        invalid(f"the request holds a value that cannot be used ({kind})"), request
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    err = InternalError(
        "the server failed to answer this request",
        code="INTERNAL_ERROR",
        details={"exception": type(exc).__name__},
    )
    return error_response(err, request)


def install_handlers(app: FastAPI) -> None:
    """Routes every exception to an answer in the protocol's error shape."""
    app.add_exception_handler(CraError, _cra_error)
    app.add_exception_handler(RequestValidationError, _query_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for cls in (UnicodeError, RecursionError, OverflowError):
        app.add_exception_handler(cls, _input_error)
    app.add_exception_handler(Exception, _unexpected)
