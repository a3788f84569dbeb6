"""The FastAPI application: `create_app(config)`.

One process, one runtime: run it with a single uvicorn worker (sessions,
resolutions and approvals live in the process). Shutting down (SIGTERM
under uvicorn) lets requests in flight finish, then flushes every trace to
the store and closes it.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable, Dict, Mapping, Optional

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.concurrency import run_in_threadpool

from .. import __version__
from . import (
    routes_approvals,
    routes_atlases,
    routes_carp,
    routes_health,
    routes_sessions,
    routes_traces,
    stream,
)
from .config import ServerConfig
from .errors import install_handlers
from .fastpath import FastResolve
from .state import ServerState

__all__ = ["ROUTERS", "create_app"]

#: Every route the app serves, by resource.
ROUTERS = (
    routes_health.router,
    routes_sessions.router,
    routes_carp.router,
    routes_approvals.router,
    routes_traces.router,
    routes_atlases.router,
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
    for router in ROUTERS:
        app.include_router(router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> Dict[str, Any]:
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
