"""JSON bodies over HTTP: reading requests strictly, answering in the asked media type.

Requests are read with a size limit, a media type check and strict JSON;
answers are written in the media type the client's Accept names.
"""

from __future__ import annotations

import json
import math
from typing import Any, Dict, List, Mapping, NoReturn, Optional, Sequence

from fastapi import Request
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import Receive

from .errors import PayloadTooLarge, UnsupportedMediaType, invalid

__all__ = [
    "ATLAS",
    "CARP",
    "JSON",
    "NDJSON",
    "TRACE",
    "TRACE_JSONL",
    "accepted",
    "dumps",
    "json_response",
    "negotiate",
    "parse_object",
    "read_json",
    "read_object",
    "string_fields",
]

JSON = "application/json"
CARP = "application/vnd.cra.carp+json"
TRACE = "application/vnd.cra.trace+json"
TRACE_JSONL = "application/vnd.cra.trace+jsonl"
ATLAS = "application/vnd.cra.atlas+json"
NDJSON = "application/x-ndjson"


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _is_json_type(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == JSON or (media.startswith("application/") and media.endswith("+json"))


def _too_large(limit: int, size: Optional[int] = None) -> PayloadTooLarge:
    what = f"the request body ({size} bytes)" if size is not None else "the request body"
    return PayloadTooLarge(
        f"{what} is over the limit of {limit} bytes",
        code="PAYLOAD_TOO_LARGE",
        details={"limit": limit},
    )


async def read_json(headers: Headers, receive: Receive, limit: int) -> Dict[str, Any]:
    """The body of a request as a JSON object, or a 400/413/415 error;
    works on any ASGI request (the routes' and the fast path's)."""
    content_type = headers.get("content-type")
    if content_type is None:
        # A browser sends a "simple" cross-site request without a JSON type.
        raise UnsupportedMediaType(
            "the body must be declared as JSON: Content-Type: application/json "
            "(or a +json type) is required",
            code="UNSUPPORTED_MEDIA_TYPE",
        )
    if not _is_json_type(content_type):
        raise UnsupportedMediaType(
            f"the body must be JSON (application/json or a +json type), not {content_type[:100]}",
            code="UNSUPPORTED_MEDIA_TYPE",
        )
    length = headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise _too_large(limit, int(length))
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        body += message.get("body", b"")
        if len(body) > limit:
            raise _too_large(limit)
        if not message.get("more_body", False):
            break
    return parse_object(body)


def parse_object(raw: bytes) -> Dict[str, Any]:
    """Strict JSON (no NaN or infinities) that must be an object."""
    if not raw.strip():
        raise invalid("the request body is empty; a JSON object is expected")
    try:
        value = json.loads(raw, parse_constant=_reject_constant, parse_float=_finite_float)
    except (ValueError, RecursionError) as e:
        raise invalid(f"the request body is not valid JSON: {str(e)[:200]}") from None
    if not isinstance(value, dict):
        raise invalid(f"the request body must be a JSON object, not {_kind(value)}")
    return value


async def read_object(request: Request, limit: int) -> Dict[str, Any]:
    """The request's body as a JSON object, or a 400/413/415 error."""
    return await read_json(request.headers, request.receive, limit)


def string_fields(
    body: Mapping[str, Any], required: Sequence[str], optional: Sequence[str] = ()
) -> Dict[str, Optional[str]]:
    """The body's fields, all strings: required ones present, no unknown keys."""
    allowed = set(required) | set(optional)
    for key in body:
        if key not in allowed:
            names = ", ".join(sorted(allowed))
            raise invalid(f"unknown key (allowed: {names})", "/" + _escape(key))
    out: Dict[str, Optional[str]] = {}
    for key in (*required, *optional):
        value = body.get(key)
        if value is None and key in required:
            raise invalid("is required (a string)", f"/{key}")
        if value is not None and not isinstance(value, str):
            raise invalid(f"must be a string, not {_kind(value)}", f"/{key}")
        out[key] = value
    return out


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def accepted(headers: Headers) -> List[str]:
    """The media types the client's Accept header names (q=0 left out)."""
    accept = headers.get("accept")
    if not accept:
        return []
    out = []
    for item in accept.lower().split(","):
        media, *params = (p.strip() for p in item.split(";"))
        if any(p.replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000") for p in params):
            continue
        out.append(media)
    return out


def negotiate(headers: Headers, vendor: str) -> str:
    """The vendor media type when the client's Accept names it, else JSON."""
    return vendor if vendor in accepted(headers) else JSON


def dumps(value: Any) -> str:
    """Compact JSON text of an answer."""
    return json.dumps(value, separators=(",", ":"))


def json_response(
    value: Any,
    status: int = 200,
    media_type: str = JSON,
    headers: Optional[Mapping[str, str]] = None,
) -> Response:
    """An answer whose body is `value` as JSON (or already JSON text)."""
    text = value if isinstance(value, str) else dumps(value)
    return Response(text, status, headers, media_type=media_type)
