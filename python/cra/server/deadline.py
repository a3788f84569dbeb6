"""A deadline for request headers: a connection that stalls mid-headers is closed."""

from __future__ import annotations

import asyncio
from typing import Any, Optional, Type

__all__ = ["header_protocol"]

# uvicorn times out idle keep-alive connections only after a first answer; a
# client that opens a connection and sends half a request line (or nothing)
# holds it for ever. `header_protocol(seconds)` is uvicorn's httptools
# protocol with a deadline: from the connection's start, and from the first
# byte of each next request, the headers must be complete within `seconds`,
# or the connection is closed without an answer. Bodies are not covered (the
# body limit and the routes bound those).


def header_protocol(seconds: float) -> Optional[Type[Any]]:
    """uvicorn's httptools protocol with a header deadline, or None
    without httptools (then uvicorn's own protocol serves, unbounded)."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # pragma: no cover - httptools comes with uvicorn[standard]
        return None

    class HeaderDeadline(HttpToolsProtocol):
        _deadline: Optional[asyncio.TimerHandle] = None

        def _arm(self) -> None:
            if self._deadline is None:
                self._deadline = self.loop.call_later(seconds, self._expired)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expired(self) -> None:
            self._deadline = None
            if not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Optional[Exception]) -> None:
            self._disarm()
            super().connection_lost(exc)

    return HeaderDeadline
