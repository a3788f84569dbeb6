"""`WS /v1/traces/stream`: sealed events pushed to WebSocket clients as they are written.

`WS /v1/traces/stream?session_id=&since_sequence=` sends one text message
per event (the event's JSON), fed by the server's `StreamHub`. With
`since_sequence`, stored events of the session from that sequence on are
sent first, then live ones, without a gap or a repeat. Errors are sent as
one §8 error message, then the socket is closed with code 4000 + the HTTP
status (4401, 4404, 4400).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, List, Optional

from fastapi import APIRouter, WebSocket
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketDisconnect, WebSocketState

from ...errors import CraError
from ..body import dumps
from ..errors import invalid, render, request_id_of
from ..hub import Subscriber
from ..ids import canonical_id
from ..state import ServerState

__all__ = ["router"]

router = APIRouter()


async def _refuse(websocket: WebSocket, error: CraError) -> None:
    await websocket.accept()
    status, _headers, text = render(error, request_id_of(websocket.headers))
    await websocket.send_text(text)
    await websocket.close(code=4000 + status, reason=error.code)


def _since(text: Optional[str]) -> Optional[int]:
    if text is None:
        return None
    if not text.isdigit() or len(text) > 18:
        raise invalid("since_sequence must be a non-negative integer", "/query/since_sequence")
    return int(text)


@router.websocket("/v1/traces/stream")
async def trace_stream(websocket: WebSocket) -> None:
    st: ServerState = websocket.app.state.cra
    session_id = websocket.query_params.get("session_id")
    try:
        since = _since(websocket.query_params.get("since_sequence"))
        caller = st.keys.identify_headers(websocket.headers)
        if session_id is not None:
            session_id = canonical_id(session_id, "/query/session_id")
            await st.checked(session_id, caller, "/query/session_id")
            if not await run_in_threadpool(st.session_exists, session_id):
                raise st.not_found(session_id, "/query/session_id")
        elif since is not None:
            raise invalid("since_sequence needs a session_id", "/query/since_sequence")
    except CraError as e:
        await _refuse(websocket, e)
        return
    await websocket.accept()
    owner = None if caller.sees_all else caller.key_id
    sub = Subscriber(asyncio.get_running_loop(), session_id, owner)
    st.hub.subscribe(sub)
    try:
        await _pump(websocket, st, sub, since)
    finally:
        st.hub.unsubscribe(sub)


async def _pump(
    websocket: WebSocket, st: ServerState, sub: Subscriber, since: Optional[int]
) -> None:
    last = -1
    if since is not None and sub.session_id is not None:
        sid = sub.session_id

        def backlog() -> List[Any]:
            st.runtime.flush(st.config.shutdown_timeout)
            return st.store.events(sid, since_sequence=since)

        for e in await run_in_threadpool(backlog):
            await websocket.send_text(dumps(e))
            last = e["sequence"]
    receiver = asyncio.ensure_future(_until_closed(websocket))
    try:
        while True:
            getter = asyncio.ensure_future(sub.queue.get())
            done, _ = await asyncio.wait({getter, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                return
            batch = getter.result()
            if batch is None:
                await websocket.close(code=1013 if sub.overflowed else 1001)
                return
            for seq, text in batch:
                if sub.session_id is not None and seq <= last:
                    continue
                await websocket.send_text(text)
    except (WebSocketDisconnect, RuntimeError):
        return
    finally:
        receiver.cancel()
        if websocket.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await websocket.close()


async def _until_closed(websocket: WebSocket) -> None:
    """Reads (and ignores) client messages until the client goes away."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
