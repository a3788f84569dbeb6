"""Atlas management: list, load (409 if loaded), replace, read, unload.

Bodies are whole manifests (Atlas/1.0 JSON). An atlas loaded over HTTP has
no directory, so its context packs carry their text inline (`content`);
`files` are only for atlases loaded from disk at start. Every role reads
atlases; only admin keys load, replace and unload them (403 otherwise).
"""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ...errors import ConflictError
from ...storage import PostgresStore
from ..auth import AdminCaller, Caller, Principal
from ..body import ATLAS, json_response, negotiate, read_object
from ..errors import invalid
from ..openapi import BODY_ERRORS, json_body, responses
from ..state import ServerState, state_of

__all__ = ["router"]

router = APIRouter()


@router.get("/v1/atlases", responses=responses(200, 401))
async def list_atlases(request: Request, caller: Principal = Caller) -> Response:
    """The loaded atlases, in load order."""
    st = state_of(request)
    return json_response({"atlases": [asdict(a) for a in st.runtime.atlases()]})


@router.post(
    "/v1/atlases",
    status_code=201,
    responses=responses(201, *BODY_ERRORS, 401, 403, 409),
    openapi_extra=json_body(ATLAS, "application/json"),
)
async def load_atlas(request: Request, caller: Principal = AdminCaller) -> Response:
    """Loads an atlas; 409 if one with its id is loaded already."""
    st = state_of(request)
    _changeable(st)
    manifest = await read_object(request, st.config.max_body_bytes)
    info = await run_in_threadpool(st.runtime.load_atlas, manifest)
    return json_response(asdict(info), 201)


@router.put(
    "/v1/atlases/{atlas_id}",
    responses=responses(200, 201, *BODY_ERRORS, 401, 403, 409),
    openapi_extra=json_body(ATLAS, "application/json"),
)
async def replace_atlas(
    request: Request, atlas_id: str, caller: Principal = AdminCaller
) -> Response:
    """Loads or atomically replaces the atlas `atlas_id` (200 replaced, 201 new)."""
    st = state_of(request)
    _changeable(st)
    manifest = await read_object(request, st.config.max_body_bytes)
    if manifest.get("atlas_id") != atlas_id:
        raise invalid(f"must equal the atlas id of the URL, {atlas_id}", "/atlas_id")
    existed = any(a.atlas_id == atlas_id for a in st.runtime.atlases())
    info = await run_in_threadpool(lambda: st.runtime.load_atlas(manifest, replace=True))
    return json_response(asdict(info), 200 if existed else 201)


@router.get("/v1/atlases/{atlas_id}", responses=responses(200, 401, 404))
async def get_atlas(request: Request, atlas_id: str, caller: Principal = Caller) -> Response:
    """The merged manifest of a loaded atlas."""
    st = state_of(request)
    return json_response(
        st.runtime.atlas_manifest(atlas_id), media_type=negotiate(request.headers, ATLAS)
    )


@router.delete(
    "/v1/atlases/{atlas_id}", status_code=204, responses=responses(204, 401, 403, 404, 409)
)
async def unload_atlas(
    request: Request, atlas_id: str, caller: Principal = AdminCaller
) -> Response:
    """Unloads an atlas with all of its actions, policies and context."""
    st = state_of(request)
    _changeable(st)
    st.runtime.unload_atlas(atlas_id)
    return Response(status_code=204)


def _changeable(st: ServerState) -> None:
    """409 `ATLASES_SHARED` on a replica of a shared (PostgreSQL) store: a
    change made here would hold on this replica only, and the replicas
    would govern the same agents differently."""
    if isinstance(st.store, PostgresStore):
        raise ConflictError(
            "this server shares its store with other replicas, which must all load the same "
            "atlases: change the atlas directory they are started with instead",
            code="ATLASES_SHARED",
        )
