"""`Host` and `Origin` allow-lists: a web page cannot drive a local server."""

from __future__ import annotations

import ipaddress
from typing import FrozenSet, List, Optional, Tuple

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import AuthorizationError
from .errors import render, request_id_of

__all__ = ["LOOPBACK_NAMES", "HostCheck", "is_loopback"]

# `Host` and `Origin` allow-lists: a web page cannot drive a local server.
#
# A browser lets any page send requests to `http://127.0.0.1:8420`, and a DNS
# rebinding page can even read the answers (its own host name resolving to
# loopback). So, before routing (and before the fast path and the WebSocket),
# every request's `Host` must be an allowed host and a request that carries
# an `Origin` must come from an allowed origin; otherwise 403
# `HOST_NOT_ALLOWED` / `ORIGIN_NOT_ALLOWED` in the protocol's error shape
# (a WebSocket is refused before it is accepted, with 403).
#
# Defaults: bound to a loopback address, the allowed hosts are `localhost`,
# `127.0.0.1` and `[::1]`, each with and without the port; bound elsewhere,
# any host. Origins: only the server's own (`http://localhost:PORT`,
# `http://127.0.0.1:PORT`, `http://[::1]:PORT`) unless more are configured.
# Requests that come over no network socket (an in-process ASGI client whose
# client address is not an IP address, as Starlette's TestClient's) are not
# checked for `Host`: no browser can send them.

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


def is_loopback(host: str) -> bool:
    """True for a bind address that only this machine can reach."""
    h = host.strip().strip("[]").lower()
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def _is_ip(text: object) -> bool:
    if not isinstance(text, str):
        return False
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


class HostCheck:
    """ASGI middleware: refuses a foreign `Host` or `Origin` with 403."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        bind: str,
        port: int,
        allowed_hosts: Optional[Tuple[str, ...]],
        allowed_origins: Tuple[str, ...],
    ) -> None:
        self.app = app
        self.bind = bind
        self.port = port
        self.hosts = allowed_hosts
        self.origins = frozenset(o.strip().rstrip("/").lower() for o in allowed_origins)

    def _port(self, scope: Scope) -> int:
        server = scope.get("server")
        if server and len(server) > 1 and isinstance(server[1], int):
            return int(server[1])
        return self.port

    def _allowed_hosts(self, port: int) -> Optional[FrozenSet[str]]:
        """The allowed `Host` values (lower case); None: any host."""
        if self.hosts is None:
            if not is_loopback(self.bind):
                return None
            names: List[str] = list(LOOPBACK_NAMES)
        else:
            if "*" in self.hosts:
                return None
            names = [h.strip().lower() for h in self.hosts if h.strip()]
        out = set(names)
        out.update(f"{n}:{port}" for n in names if not n.endswith("]") and ":" not in n)
        out.update(f"{n}:{port}" for n in names if n.endswith("]"))
        return frozenset(out)

    def _allowed_origin(self, origin: str, port: int) -> bool:
        o = origin.strip().rstrip("/").lower()
        if "*" in self.origins or o in self.origins:
            return True
        return o in {f"http://{n}:{port}" for n in LOOPBACK_NAMES}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        port = self._port(scope)
        error: Optional[AuthorizationError] = None
        client = scope.get("client")
        if client and _is_ip(client[0]):
            allowed = self._allowed_hosts(port)
            host = headers.get("host", "")
            if allowed is not None and host.strip().lower() not in allowed:
                error = AuthorizationError(
                    "the Host header names a host this server does not answer for "
                    "(see --allowed-hosts)",
                    code="HOST_NOT_ALLOWED",
                )
        origin = headers.get("origin")
        if error is None and origin is not None and not self._allowed_origin(origin, port):
            error = AuthorizationError(
                "requests from this Origin are not allowed (see --allowed-origins)",
                code="ORIGIN_NOT_ALLOWED",
            )
        if error is None:
            await self.app(scope, receive, send)
            return
        status, extra, text = render(error, request_id_of(headers))
        data = text.encode()
        raw = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(data)).encode()),
        ]
        raw.extend((k.lower().encode(), v.encode("latin-1")) for k, v in extra.items())
        if scope["type"] == "websocket":
            # Refused before the handshake completes (the WebSocket denial response).
            if "websocket.http.response" in scope.get("extensions", {}):
                start = {"type": "websocket.http.response.start", "status": status, "headers": raw}
                await send(start)
                await send({"type": "websocket.http.response.body", "body": data})
            else:
                await send({"type": "websocket.close", "code": 4403, "reason": error.code})
            return
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": data})
