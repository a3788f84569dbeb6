"""`GET /v1/health`: the one endpoint that needs no API key."""

from __future__ import annotations

import logging
import time
from typing import Optional

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ..._core import __version__
from ...storage import PostgresStore
from ..body import json_response
from ..openapi import responses
from ..state import state_of

__all__ = ["router"]

log = logging.getLogger("cra.server")

router = APIRouter()


@router.get("/v1/health", responses=responses(200, 503))
async def health(request: Request) -> Response:
    """Liveness: the version, the protocols served and the loaded atlases.
    503 with `status: degraded` and the `reason` while the trace cannot keep
    events (its store cannot write, or its queue is nearly full): traced
    requests are then refused with `TRACE_UNAVAILABLE`."""
    st = state_of(request)
    reason = _public_reason(st.runtime._core.unavailable_reason())
    if reason is None and isinstance(st.store, PostgresStore):
        # A shared store is read and written by requests directly too.
        fault = await run_in_threadpool(st.store.ping)
        if fault is not None:
            log.warning("cra serve: health degraded: %s", fault)
            reason = "the shared store cannot be reached (the server log has its error)"
    stats = st.runtime.stats()
    return json_response(
        {
            "status": "ok" if reason is None else "degraded",
            "reason": reason,
            "trace": {
                "queue_depth": stats["queue_depth"],
                "recorded": stats["recorded"],
                "written": stats["written"],
                "sink_errors": stats["sink_errors"],
            },
            "version": __version__,
            "protocols": {"carp": "1.0", "trace": "1.0", "atlas": "1.0"},
            "hash_algorithm": st.runtime.hash_algorithm,
            "atlases": len(st.runtime.atlases()),
            "auth": st.keys.enabled,
            "uptime_seconds": round(time.time() - st.started, 3),
        },
        200 if reason is None else 503,
        headers=None if reason is None else {"Retry-After": "1"},
    )


def _public_reason(reason: Optional[str]) -> Optional[str]:
    """The reason without the store's own error text (which may name files;
    health needs no key): that goes to the log."""
    if reason is None or not reason.startswith("the trace store cannot write"):
        return reason
    log.warning("cra serve: health degraded: %s", reason)
    return "the trace store cannot write (the server log has its error)"
