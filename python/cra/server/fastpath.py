"""`POST /v1/resolve` and `POST /v1/execute` without the framework's
per-request machinery.

Resolve is the call agents make in a loop, and FastAPI's routing and
dependency solving cost more CPU than the resolve itself: on the 2-core
bench machine the server spends about 150 µs per resolve on this path and
about 300 µs on the FastAPI route (docs/DEV_LOG.md, 2026-11-22). This ASGI
middleware answers that one operation directly, with the same functions as
the route (the API-key and role checks, `read_json`, `resolve_answer`, `render` for
errors), so the two cannot drift, and a test holds their answers equal; the
route stays the documented one and serves when the fast path is off
(`ServerConfig.fast_resolve = False`, `CRA_FAST_RESOLVE=0`). An exception it
does not expect goes on to the app's catch-all, like any route's.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import CraError
from .auth import AGENT, require_role
from .body import CARP, negotiate, read_json
from .errors import INPUT_ERRORS, input_error, render, request_id_of
from .routes.carp import execute_answer, resolve_answer
from .state import ServerState

__all__ = ["FastResolve"]

PATH = "/v1/resolve"
EXECUTE = "/v1/execute"


class FastResolve:
    """ASGI middleware: serves `POST /v1/resolve`, passes everything else on."""

    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"] if scope["type"] == "http" else None
        if path not in (PATH, EXECUTE) or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        st = self.state
        headers = Headers(scope=scope)
        try:
            caller = require_role(st.keys.identify_headers(headers), AGENT)
            body = await read_json(headers, receive, st.config.max_body_bytes)
            extra: Dict[str, str] = {}
            if path == PATH:
                text = await st.traced(resolve_answer, st, body, caller)
                status = 200
            else:
                status, extra, text = await execute_answer(st, body, caller)
            media = negotiate(headers, CARP)
        except CraError as e:
            status, extra, text = render(e, request_id_of(headers))
            media = "application/json"
        except INPUT_ERRORS as e:
            status, extra, text = render(input_error(e), request_id_of(headers))
            media = "application/json"
        except ClientDisconnect:
            return
        data = text.encode()
        raw: List[Tuple[bytes, bytes]] = [
            (b"content-type", media.encode()),
            (b"content-length", str(len(data)).encode()),
        ]
        raw.extend((k.lower().encode(), v.encode("latin-1")) for k, v in extra.items())
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": data})
