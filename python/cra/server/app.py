"""The FastAPI application: `create_app(config)`.

One process, one runtime: run it with a single uvicorn worker (sessions,
resolutions and approvals live in the process). Shutting down (SIGTERM
under uvicorn) lets requests in flight finish, then flushes every trace to
the store and closes it.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable, Mapping, Optional

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from .._core import __version__
from .config import ServerConfig
from .errors import install_handlers
from .fastpath import FastResolve
from .hosts import HostCheck
from .openapi import schema
from .routes import approvals, atlases, carp, health, sessions, stream, traces
from .state import ServerState

__all__ = ["ROUTERS", "create_app"]

#: Every route the app serves, by resource.
ROUTERS = (
    health.router,
    sessions.router,
    carp.router,
    approvals.router,
    traces.router,
    atlases.router,
    stream.router,
)

DESCRIPTION = (
    "The CRA runtime over HTTP: sessions, CARP resolve/execute/validate, "
    "approvals, TRACE chains and atlas management. Errors use one body: "
    '{"error": {code, message, category, recoverable, details, request_id}}.'
)


def create_app(
    config: Optional[ServerConfig] = None,
    *,
    executors: Optional[Mapping[str, Callable[..., Any]]] = None,
) -> FastAPI:
    """The HTTP API of one runtime. `executors` maps action ids (or atlas
    executor names) to callables, for embedding and tests; more can be
    registered later with `app.state.cra.runtime.register_executor`."""
    state = ServerState(config or ServerConfig.from_env(), executors)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await run_in_threadpool(state.close)

    app = FastAPI(
        title="cra",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.cra = state
    install_handlers(app)
    if state.config.fast_resolve:
        app.add_middleware(FastResolve, state=state)
    # Added last, so it runs first: before the fast path, routing and the WebSocket.
    app.add_middleware(
        HostCheck,
        bind=state.config.host,
        port=state.config.port,
        allowed_hosts=state.config.allowed_hosts,
        allowed_origins=state.config.allowed_origins,
    )
    for router in ROUTERS:
        app.include_router(router)
    app.openapi = lambda: schema(app)  # type: ignore[method-assign]
    return app
