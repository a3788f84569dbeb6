"""`ServerState`: the runtime, store, stream hub, keys and owners of one server.

The durable store and the stream hub are sinks of the runtime;
`state_of(request)` finds the state from a route. A route that records
events answers only once they are written (`ServerState.traced`, through
`Committer`), and refuses work while the trace cannot keep events.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Mapping as MappingABC
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, Mapping, Optional, TypeVar

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from ..errors import ConflictError, CraError, NotFoundError
from ..runtime import Runtime
from ..storage import PostgresStore, open_store
from .auth import KeyRing, Principal
from .commit import Committer
from .config import ServerConfig
from .hub import StreamHub
from .owners import Owners

__all__ = ["ServerState", "load_atlas_dir", "register_from_spec", "state_of"]

log = logging.getLogger("cra.server")

Executor = Callable[..., Any]
T = TypeVar("T")

#: How long a request may wait for room in a full trace queue: none. The
#: resolve path runs on the event loop, which must never block on the
#: queue; a full queue answers 503 `TRACE_UNAVAILABLE` at once.
QUEUE_WAIT_SECONDS = 0.0


class ServerState:
    """The runtime behind the HTTP API and everything around it."""

    def __init__(
        self, config: ServerConfig, executors: Optional[Mapping[str, Executor]] = None
    ) -> None:
        self.config = config.validated()
        self.keys = KeyRing(config.keys())
        self.store = open_store(config.store)
        self.owners = Owners(config.store, self.store)
        self.hub = StreamHub(self.owners)
        self.runtime = Runtime(
            hash_algorithm=config.hash_algorithm,
            sinks=[self.store, self.hub],
            memory_limit=config.memory_limit,
            clock_skew_seconds=config.clock_skew_seconds,
            queue_wait_seconds=QUEUE_WAIT_SECONDS,
            signing_key=config.signing_key,
        )
        if isinstance(self.store, PostgresStore):
            self.store.share_state(self.runtime)
        self.committer = Committer(self.runtime._core)
        self.started = time.time()
        self.closed = False
        try:
            if config.atlas_dir:
                load_atlas_dir(self.runtime, config.atlas_dir)
            if config.executors:
                register_from_spec(self.runtime, config.executors)
            for key, fn in (executors or {}).items():
                self.runtime.register_executor(key, fn)
        except BaseException:
            self.close()
            raise

    @property
    def shared(self) -> bool:
        """True when the store is shared with other replicas (PostgreSQL):
        sessions, owners, limits, resolutions and approvals live in it."""
        return isinstance(self.store, PostgresStore)

    # -- acknowledged means kept --------------------------------------------
    def check_trace(self) -> None:
        """503 `TRACE_UNAVAILABLE` (before anything is done) while the
        trace cannot keep events: the store is failing or the queue is
        nearly full."""
        self.runtime._core.check_available()

    async def traced(self, work: Callable[..., T], *args: Any) -> T:
        """Runs `work(*args)` (which records events) and returns once they
        are written; 503 `TRACE_UNAVAILABLE` instead if the trace cannot
        keep them. The work's own error is raised after its events (an
        `error.occurred`) are written, too."""
        self.check_trace()
        try:
            # With a shared store the work queries it: never on the event loop.
            out = await run_in_threadpool(work, *args) if self.shared else work(*args)
        except Exception:
            await self.committer.after()
            raise
        await self.committer.after()
        return out

    async def traced_async(self, work: Callable[[], Awaitable[T]]) -> T:
        """`traced` for work that is awaited (an execute in the thread pool)."""
        self.check_trace()
        try:
            out = await work()
        except Exception:
            await self.committer.after()
            raise
        await self.committer.after()
        return out

    # -- who may see what --------------------------------------------------
    def require_session(self, session_id: str, caller: Principal, path: str = "") -> None:
        """404 unless the caller may see the session: an agent key only its
        own (a canonical id, `cra.server.ids`); approvers, admins and the
        anonymous caller of a server without keys, any."""
        if not caller.sees_all and self.owners.owner(session_id) != caller.key_id:
            raise self.not_found(session_id, path)
        if self.shared:
            self.adopt(session_id)

    async def checked(self, session_id: str, caller: Principal, path: str = "") -> None:
        """`require_session` from a route: in the thread pool when it may
        query a shared store (the event loop never waits on a database)."""
        if self.shared:
            await run_in_threadpool(self.require_session, session_id, caller, path)
        else:
            self.require_session(session_id, caller, path)

    def adopt(self, session_id: str) -> None:
        """With a shared store, brings this replica in line with the store
        for one session: an open session another replica started continues
        here (its chain goes on from the stored head), and one another
        replica ended is closed here too (so it refuses here as well)."""
        store = self.store
        assert isinstance(store, PostgresStore)
        stored = store.session_status(session_id)
        if stored is None:
            return  # not in the store (yet): the runtime answers for it
        try:
            held = self.runtime.get_session(session_id)["status"]
        except NotFoundError:
            held = None
        if stored == "ended":
            if held == "active":
                self.runtime._core.close_ended_elsewhere(session_id)
            return  # ended: the runtime answers as for an ended or unknown session
        if held is None:
            try:
                store.resume(self.runtime, session_id)
            except ConflictError:
                pass  # another request adopted it meanwhile

    def visible(self, session_id: str, caller: Principal) -> bool:
        """True if `require_session` would let the caller see the session."""
        return caller.sees_all or self.owners.owner(session_id) == caller.key_id

    @staticmethod
    def not_found(session_id: str, path: str = "") -> NotFoundError:
        return NotFoundError(
            f"session {session_id} not found", code="SESSION_NOT_FOUND", path=path or None
        )

    def session_exists(self, session_id: str) -> bool:
        """True if the runtime or the store knows the session."""
        try:
            self.runtime.get_session(session_id)
            return True
        except NotFoundError:
            return bool(self.store.events(session_id, limit=1))

    def close(self) -> None:
        """Flushes every trace to the store and closes everything (once)."""
        if self.closed:
            return
        self.closed = True
        timeout = self.config.shutdown_timeout
        self.committer.close()
        try:
            if not self._close_runtime(timeout):
                log.error("cra serve: traces not all written within %.0f s", timeout)
            s = self.runtime.stats()
            log.info(
                "cra serve: closed; %d events recorded, %d written, %d dropped",
                s["recorded"],
                s["written"],
                s["dropped"],
            )
        finally:
            self.hub.close()
            self.store.close()
            self.owners.close()

    def _close_runtime(self, timeout: float) -> bool:
        """Closes the runtime; a store failure seen earlier (reported once,
        then retried) is logged and the close goes on: what is still
        queued is written if the store takes it within `timeout`."""
        for _ in range(3):
            try:
                return bool(self.runtime.close(timeout=timeout))
            except CraError as e:
                log.error("cra serve: while closing: %s", e.message)
        return False


def state_of(request: Request) -> ServerState:
    """The server state of the app serving `request`."""
    st: ServerState = request.app.state.cra
    return st


#: The manifest names of an atlas directory, and the suffixes of manifest files.
MANIFESTS = ("atlas.json", "atlas.yaml", "atlas.yml")
MANIFEST_SUFFIXES = (".json", ".yaml", ".yml")


def load_atlas_dir(runtime: Runtime, directory: str) -> List[str]:
    """Loads every atlas directory (with an `atlas.json`, `atlas.yaml` or
    `atlas.yml`) and every `*.json`/`*.yaml`/`*.yml` manifest in
    `directory`, retrying those that depend on one loaded later; returns
    their ids."""
    root = Path(directory)
    if not root.is_dir():
        raise NotFoundError(f"atlas directory {directory} does not exist", code="IO_ERROR")
    sources = sorted(
        p
        for p in root.iterdir()
        if (p.is_dir() and any((p / m).is_file() for m in MANIFESTS))
        or (p.is_file() and p.suffix in MANIFEST_SUFFIXES)
    )
    loaded: List[str] = []
    while sources:
        failed: Dict[Path, CraError] = {}
        for p in sources:
            try:
                loaded.append(runtime.load_atlas(p).atlas_id)
            except CraError as e:
                failed[p] = e
        if len(failed) == len(sources):
            path, err = next(iter(failed.items()))
            err.details.setdefault("file", str(path))
            raise err
        sources = list(failed)
    return loaded


def register_from_spec(runtime: Runtime, spec: str) -> None:
    """Registers the executors named by `module:attribute` (a mapping of
    action id to callable, or a callable that is given the runtime)."""
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise ValueError(f"executors {spec!r}: expected module:attribute")
    target = getattr(importlib.import_module(module), attr)
    if isinstance(target, MappingABC):
        for key, fn in target.items():
            runtime.register_executor(key, fn)
    elif callable(target):
        target(runtime)
    else:
        raise ValueError(f"executors {spec!r}: not a mapping or a callable")
