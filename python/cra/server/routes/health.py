"""`GET /v1/health`: the one endpoint that needs no API key."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from starlette.responses import Response

from ..._core import __version__
from ..body import json_response
from ..openapi import responses
from ..state import state_of

__all__ = ["router"]

router = APIRouter()


@router.get("/v1/health", responses=responses(200))
async def health(request: Request) -> Response:
    """Liveness: the version, the protocols served and the loaded atlases."""
    st = state_of(request)
    return json_response(
        {
            "status": "ok",
            "version": __version__,
            "protocols": {"carp": "1.0", "trace": "1.0", "atlas": "1.0"},
            "hash_algorithm": st.runtime.hash_algorithm,
            "atlases": len(st.runtime.atlases()),
            "auth": st.keys.enabled,
            "uptime_seconds": round(time.time() - st.started, 3),
        }
    )
