"""HTTP errors: every failure answered in the protocol's error shape.

The shape is `{"error": {code, message, category, recoverable, details, request_id}}`.

The runtime's exceptions carry their own code, category and status; what
FastAPI and Starlette raise (unknown route, wrong method, bad query
parameter) is translated; anything unforeseen is a 500 in the same shape.
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from typing import Dict, List, Mapping, Optional, Tuple

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from ..errors import CraError, InternalError, NotFoundError, UnavailableError, ValidationError

__all__ = [
    "INPUT_ERRORS",
    "PayloadTooLarge",
    "UnsupportedMediaType",
    "error_response",
    "input_error",
    "install_handlers",
    "invalid",
    "render",
    "request_id_of",
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


def request_id_of(headers: Mapping[str, str]) -> Optional[str]:
    """The client's X-Request-ID, named in error bodies that have no CARP id."""
    rid = headers.get("x-request-id")
    return rid if rid and len(rid) <= 200 else None


#: Codes of faults of the server's own files and store: their text (paths,
#: SQLite's and the OS's messages) is logged, never answered.
SERVER_FAULT_CODES = frozenset(
    {"IO_ERROR", "FILE_NOT_FOUND", "PERMISSION_DENIED", "TRACE_SINK_FAILED", "RECORDER_CLOSED"}
)

GENERIC_MESSAGE = "the server failed to answer this request; its log names the cause by request_id"

#: What a 503 `TRACE_UNAVAILABLE` says; the store's own error (which may
#: name files) goes to the log with the request_id.
UNAVAILABLE_MESSAGE = (
    "the trace cannot keep this request's events now, so the request is not "
    "acknowledged; retry after Retry-After seconds"
)

#: Seconds a 503 asks the client to wait.
RETRY_AFTER_UNAVAILABLE = 1


def is_server_fault(error: CraError) -> bool:
    """True for an error whose text describes the server, not the request."""
    code = error.code
    return error.http_status == 500 or code in SERVER_FAULT_CODES or code.startswith("STORE_")


def new_request_id() -> str:
    """An id for an answer that has none, to find its log line by."""
    return str(uuid.uuid4())


def public(error: CraError, request_id: Optional[str] = None) -> CraError:
    """The error as it may be answered: a server fault becomes a generic
    message with a request_id, its detail logged (logger `cra.server`)
    under that id; any other error is returned as it is."""
    if error.code == "TRACE_UNAVAILABLE" and error.message != UNAVAILABLE_MESSAGE:
        rid = error.request_id or request_id or new_request_id()
        log.warning("request_id=%s: TRACE_UNAVAILABLE: %s", rid, error.message)
        return UnavailableError(
            UNAVAILABLE_MESSAGE, code=error.code, recoverable=True, request_id=rid
        )
    if not is_server_fault(error) or error.message == GENERIC_MESSAGE:
        return error
    rid = error.request_id or request_id or new_request_id()
    log.error(
        "request_id=%s: %s (%s): %s %s",
        rid,
        error.code,
        type(error).__name__,
        error.message,
        error.details or "",
    )
    out = InternalError(
        GENERIC_MESSAGE, code=error.code, recoverable=error.recoverable, request_id=rid
    )
    out.http_status = error.http_status if error.http_status >= 500 else 500
    return out


def render(error: CraError, request_id: Optional[str] = None) -> Tuple[int, Dict[str, str], str]:
    """Status, headers and JSON body of an error (§8); a server fault's
    detail goes to the log, not the body (`public`)."""
    error = public(error, request_id)
    if error.request_id is None:
        error.request_id = request_id
    headers: Dict[str, str] = {}
    if error.http_status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="cra", ApiKey header="X-API-Key"'
    retry = error.details.get("retry_after")
    if error.http_status == 429 and isinstance(retry, (int, float)) and math.isfinite(retry):
        headers["Retry-After"] = str(max(0, math.ceil(retry)))
    if error.http_status == 503:
        headers["Retry-After"] = str(RETRY_AFTER_UNAVAILABLE)
    allow = error.details.get("allow")
    if error.http_status == 405 and isinstance(allow, str):
        headers["Allow"] = allow
    return error.http_status, headers, json.dumps(error.to_dict(), separators=(",", ":"))


def error_response(error: CraError, request: Optional[Request] = None) -> Response:
    """The §8 answer of an error, with its status and headers."""
    rid = request_id_of(request.headers) if request is not None else None
    status, headers, body = render(error, rid)
    return Response(body, status, headers, media_type="application/json")


def input_error(exc: BaseException) -> ValidationError:
    """Python's refusal of a value that came from the request (a lone
    surrogate, nesting too deep, a number too large): the client's fault."""
    return invalid(f"the request holds a value that cannot be used ({type(exc).__name__})")


#: Exceptions that only a value from the request can cause.
INPUT_ERRORS = (UnicodeError, RecursionError, OverflowError)


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
        err = InternalError(f"HTTP {exc.status_code}: {exc.detail}", code="INTERNAL_ERROR")
    return error_response(err, request)


async def _input_error(request: Request, exc: Exception) -> Response:
    return error_response(input_error(exc), request)


async def _disconnected(request: Request, exc: Exception) -> Response:
    # The client went away mid-body: nobody will read this answer.
    return error_response(invalid("the client disconnected before sending the body"), request)


async def _unexpected(request: Request, exc: Exception) -> Response:
    rid = request_id_of(request.headers) or new_request_id()
    log.error(
        "request_id=%s: unexpected error on %s %s",
        rid,
        request.method,
        request.url.path,
        exc_info=exc,
    )
    err = InternalError(GENERIC_MESSAGE, code="INTERNAL_ERROR", request_id=rid)
    return error_response(err, request)


def install_handlers(app: FastAPI) -> None:
    """Routes every exception to an answer in the protocol's error shape."""
    app.add_exception_handler(CraError, _cra_error)
    app.add_exception_handler(RequestValidationError, _query_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for cls in INPUT_ERRORS:
        app.add_exception_handler(cls, _input_error)
    app.add_exception_handler(ClientDisconnect, _disconnected)
    app.add_exception_handler(Exception, _unexpected)
