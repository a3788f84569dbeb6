"""`Runtime`: atlases, sessions, CARP resolve/execute, approvals and TRACE chains."""

from __future__ import annotations

import asyncio
import atexit
import dataclasses
import inspect
import json
import os
import weakref
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    Mapping,
    Optional,
    Protocol,
    Sequence,
    TypeVar,
    Union,
)

from . import _core, log
from .agents import GovernedTools, OnApproval
from .carp import AtlasInfo, CARPResolution
from .execute import ExecuteResponse, Executors, check_key, settle
from .timing import HeartbeatConfig, SessionTTLConfig
from .trace import ChainVerification, TRACEEvent

__all__ = ["Runtime", "TraceSink"]

PathLike = Union[str, "os.PathLike[str]"]
AtlasSource = Union[PathLike, Mapping[str, Any]]
F = TypeVar("F", bound=Callable[..., Any])


class TraceSink(Protocol):
    """A place sealed events go: `write_batch` is called on the flush thread
    with each batch, in order; raising keeps the batch for a retry.

    A sink that the core can write by itself may also have a method
    `_native_sink()` returning a core sink object (`_core.SQLiteSink`, as
    `SQLiteStore` does) or None: the flush thread then writes it without
    calling Python (and without the GIL); `write_batch` is not called.

    A sink may also have `_sink_gate()` returning a `_core.SinkGate`: while
    the gate is closed, the flush thread skips the sink without taking the
    GIL."""

    def write_batch(self, events: List[TRACEEvent]) -> None: ...


class _SinkAdapter:
    """Hands a user's sink `TRACEEvent` objects instead of core events."""

    def __init__(self, sink: TraceSink) -> None:
        self._sink = sink

    def write_batch(self, events: List[_core.Event]) -> None:
        self._sink.write_batch([TRACEEvent(e) for e in events])

    def flush(self) -> None:
        flush = getattr(self._sink, "flush", None)
        if callable(flush):
            flush()

    def _sink_gate(self) -> Any:
        """The sink's `_core.SinkGate`, if it has one (see `TraceSink`)."""
        gate = getattr(self._sink, "_sink_gate", None)
        return gate() if callable(gate) else None


def _core_sink(sink: TraceSink) -> Any:
    """What the core is given for a sink: its native sink if it has one
    (see `TraceSink`), else the sink behind a `_SinkAdapter`."""
    hook = getattr(sink, "_native_sink", None)
    native = hook() if callable(hook) else None
    return native if native is not None else _SinkAdapter(sink)


_LIVE: weakref.WeakSet[Runtime] = weakref.WeakSet()

#: How long the exit hook waits for each runtime's trace to be written.
EXIT_FLUSH_SECONDS = 30.0


class Runtime:
    """Sessions, their hash-chained traces, and the stores they go to.

    With `durability="async"` (the default), `record()`, `resolve()`,
    `execute()` and the other operations return as soon as their events are
    queued; a background thread numbers, hashes, chains and writes them, and
    `flush()` waits for that. With `durability="sync"` each operation
    returns only after its events are written to every sink (concurrent
    callers share one write), and while the trace cannot keep events (a
    failing store, a nearly full queue) operations are refused with
    `UnavailableError` (`TRACE_UNAVAILABLE`) before they act.
    `queue_wait_seconds` bounds how long an operation waits for room in a
    full queue (default: as long as it takes) before the same error.
    `redaction_key` (at least 16 bytes) keys the `[REDACTED:<tag>]` markers
    of an atlas's `redact` pointers, so tags stay the same across runs
    (default: a random key per runtime); `expose_errors=True` gives an
    execute answer an executor's exception text unredacted (the trace is
    redacted either way).

    With `signing_key` (a PKCS#8 PEM Ed25519 key, `cra keys generate`), the
    flush thread seals signed `trace.checkpoint` events into every chain:
    after `checkpoint_events` events, after `checkpoint_seconds`, at each
    `flush()` (`checkpoint_at_flush`), and always as the last event of an
    ended session (`specs/trace.md`).
    """

    def __init__(
        self,
        hash_algorithm: str = "sha256",
        trace_file: Optional[PathLike] = None,
        *,
        sinks: Iterable[TraceSink] = (),
        queue_capacity: int = 65_536,
        overflow: str = "block",
        memory_limit: int = 1_000_000,
        atlases: Iterable[AtlasSource] = (),
        clock_skew_seconds: Optional[float] = 300.0,
        clock: Optional[Any] = None,
        session_ttl: Optional[SessionTTLConfig] = None,
        heartbeat: Optional[HeartbeatConfig] = None,
        atlas_limits: Optional[Mapping[str, int]] = None,
        durability: str = "async",
        queue_wait_seconds: Optional[float] = None,
        redaction_key: Optional[bytes] = None,
        expose_errors: bool = False,
        signing_key: Optional[PathLike] = None,
        checkpoint_events: int = 1000,
        checkpoint_seconds: Optional[float] = 10.0,
        checkpoint_at_flush: bool = True,
    ) -> None:
        self._core = _core.Runtime(
            hash_algorithm=hash_algorithm,
            trace_file=os.fspath(trace_file) if trace_file is not None else None,
            sinks=[_core_sink(s) for s in sinks],
            queue_capacity=queue_capacity,
            overflow=overflow,
            memory_limit=memory_limit,
            clock_skew_seconds=clock_skew_seconds,
            clock=clock,
            durability=durability,
            queue_wait_seconds=queue_wait_seconds,
            redaction_key=redaction_key,
            expose_errors=expose_errors,
            signing_key=os.fspath(signing_key) if signing_key is not None else None,
            checkpoint_events=checkpoint_events,
            checkpoint_seconds=checkpoint_seconds,
            checkpoint_at_flush=checkpoint_at_flush,
            **(session_ttl._core_args() if session_ttl else {}),
            **(heartbeat._core_args() if heartbeat else {}),
        )
        if atlas_limits is not None:
            # All or nothing; an unknown name is INVALID_OPTION with "did you mean".
            self._core.set_atlas_limits(dict(atlas_limits))
        # The hot path goes straight to the core, with no Python frame between:
        # `_core.Front` wraps the core's handles in CARPResolution and
        # ExecuteResponse and names a failed request in its error itself.
        self.record = self._core.record
        self._executors = Executors()
        self._front = _core.Front(
            self._core,
            CARPResolution,
            ExecuteResponse,
            self._executors.by_key,
            settle,
            self._executors.sessions,
            log.answered,
        )
        self.resolve = self._front.resolve  # type: ignore[method-assign]
        self.execute = self._front.execute  # type: ignore[method-assign]
        _LIVE.add(self)
        for source in atlases:
            self.load_atlas(source)

    @property
    def durability(self) -> str:
        """ "async" or "sync" (see the class documentation)."""
        return str(self._core.durability)

    # -- atlases ----------------------------------------------------------
    @property
    def atlas_limits(self) -> Dict[str, int]:
        """The limits every atlas source is held to (`specs/atlas.md` §9)."""
        return dict(self._core.atlas_limits())

    def load_atlas(
        self, source: AtlasSource, *, replace: bool = False, base_dir: Optional[PathLike] = None
    ) -> AtlasInfo:
        """Loads an atlas from a manifest file, an atlas directory or a dict.
        Loading an id that is loaded already is a conflict unless `replace`."""
        if isinstance(source, Mapping):
            base = os.fspath(base_dir) if base_dir is not None else None
            info = self._core.load_atlas(dict(source), replace, base)
        else:
            info = self._core.load_atlas(os.fspath(source), replace, None)
        return AtlasInfo._from_core(info)

    def unload_atlas(self, atlas_id: str) -> None:
        """Removes an atlas with all of its actions, policies and context."""
        self._core.unload_atlas(atlas_id)

    def atlases(self) -> List[AtlasInfo]:
        """The loaded atlases, in load order."""
        return [AtlasInfo._from_core(d) for d in self._core.atlases()]

    def atlas_manifest(self, atlas_id: str) -> Dict[str, Any]:
        """The merged manifest of a loaded atlas."""
        out: Dict[str, Any] = json.loads(self._core.atlas_manifest(atlas_id))
        return out

    # -- CARP -------------------------------------------------------------
    def resolve(self, request: Mapping[str, Any]) -> CARPResolution:
        """Resolves a CARP/1.0 request: which actions, with which context.
        (An instance calls `_core.Front.resolve` directly; this is the same.)"""
        res: CARPResolution = self._front.resolve(request)
        return res

    def execute(self, request: Mapping[str, Any]) -> ExecuteResponse:
        """Executes an action of a resolution through its registered executor,
        after every check of the protocol; governance outcomes are answers.
        (An instance calls `_core.Front.execute` directly; this is the same.)"""
        out: ExecuteResponse = self._front.execute(request)
        return out

    async def aresolve(self, request: Mapping[str, Any]) -> CARPResolution:
        """`resolve` for a running event loop (with `durability="sync"`, the
        wait for the store happens on a worker thread, not on the loop)."""
        if self.durability == "sync":
            return await asyncio.to_thread(self._front.resolve, request)
        return self._front.resolve(request)  # type: ignore[no-any-return]

    async def aexecute(self, request: Mapping[str, Any]) -> ExecuteResponse:
        """`execute` for a running event loop: an async executor is awaited
        on this loop (not on a helper thread), and the core's checks and
        records take only the time of the call itself."""
        sync = self.durability == "sync"

        async def step(fn: Callable[..., Any], *args: Any) -> Any:
            return await asyncio.to_thread(fn, *args) if sync else fn(*args)

        begun = await step(self._front.begin, request)
        if not isinstance(begun, _core.Started):
            return begun  # type: ignore[no-any-return]
        try:
            value = begun.executor(**_parameters(request))
            if inspect.isawaitable(value):
                value = await value
        except BaseException as e:
            return await step(self._front.fail, begun, e)  # type: ignore[no-any-return]
        return await step(self._front.finish, begun, value)  # type: ignore[no-any-return]

    def validate(self, request: Mapping[str, Any]) -> Dict[str, Any]:
        """Checks a request (and an execution's parameters) without acting:
        `{"valid": bool, "errors": [{"path", "message"}]}`."""
        return self._core.validate(request)

    def register_executor(self, key: str, fn: Callable[..., Any]) -> None:
        """Registers `fn(**parameters)` for an action id (or an atlas
        executor name) of a loaded atlas, for every session (a session's
        governed tools can register their own, which come first). A key no
        loaded atlas has is `ACTION_NOT_FOUND`, with "did you mean"."""
        self._check_executor_key(key, fn)
        self._executors.register(key, fn)

    def _check_executor_key(self, key: str, fn: Callable[..., Any]) -> None:
        if not callable(fn):
            raise TypeError(f"executor for {key!r} is not callable")
        check_key(key, self._core.action_executors())

    def action(self, key: str) -> Callable[[F], F]:
        """Decorator form of `register_executor`."""

        def deco(fn: F) -> F:
            self.register_executor(key, fn)
            return fn

        return deco

    def check(self) -> List[str]:
        """Actions of the loaded atlases that no runtime-wide executor serves
        (by id or executor name): executing one would fail with
        `NO_EXECUTOR`, unless a session registers its own."""
        served = self._executors.by_key
        return [
            action_id
            for action_id, name in self._core.action_executors()
            if action_id not in served and (name is None or name not in served)
        ]

    # -- approvals --------------------------------------------------------
    def approve(
        self,
        approval_id: str,
        approver: str,
        *,
        note: Optional[str] = None,
        action_id: Optional[str] = None,
        parameters_hash: Optional[str] = None,
        scope: str = "once",
    ) -> Dict[str, Any]:
        """Grants an approval. By default it covers the waiting action with
        exactly its parameters, once; `scope="resolution"` covers the action
        for the rest of the resolution's life."""
        out = self._core.approve(approval_id, approver, note, action_id, parameters_hash, scope)
        log.decided(approver, approval_id, granted=True)
        return out

    def reject(
        self, approval_id: str, approver: str, *, note: Optional[str] = None
    ) -> Dict[str, Any]:
        """Rejects an approval: the actions it gates are denied from now on."""
        out = self._core.reject(approval_id, approver, note)
        log.decided(approver, approval_id, granted=False)
        return out

    def pending_approvals(self, session_id: Optional[str] = None) -> List[Dict[str, Any]]:
        """Executions waiting for a human decision, oldest first."""
        return self._core.pending_approvals(session_id)

    # -- sessions ---------------------------------------------------------
    def create_session(
        self,
        agent_id: str,
        goal: str,
        *,
        session_id: Optional[str] = None,
        parent_session_id: Optional[str] = None,
    ) -> str:
        """Starts a session (records `session.started`); returns its id."""
        return self._core.create_session(agent_id, goal, session_id, parent_session_id)

    def end_session(self, session_id: str, reason: str = "completed") -> None:
        """Ends a session (records `session.ended`); it accepts nothing more."""
        self._core.end_session(session_id, reason)
        self._executors.forget_sessions([self._core.get_session(session_id)["session_id"]])

    def get_session(self, session_id: str) -> Dict[str, Any]:
        """A session's description (ids, agent, goal, status, times)."""
        return self._core.get_session(session_id)

    def list_sessions(self, status: Optional[str] = None) -> List[Dict[str, Any]]:
        """Sessions in creation order, optionally only `active` or `ended` ones."""
        self._core.expire_sessions()
        return self._core.list_sessions(status)

    def heartbeat(self, session_id: str) -> None:
        """Tells the runtime the session's agent is alive (see `HeartbeatConfig`)."""
        self._core.heartbeat(session_id)

    def expire_sessions(self) -> List[str]:
        """Ends every session past its TTL or heartbeat; returns their ids."""
        ended = self._core.expire_sessions()
        self._executors.forget_sessions(ended)
        return ended

    def now(self) -> float:
        """The runtime clock's reading, in seconds since the Unix epoch."""
        return self._core.now()

    def timestamp(self) -> str:
        """The runtime clock's reading as an RFC 3339 timestamp (for requests)."""
        return self._core.timestamp()

    def governed(
        self,
        session_id: str,
        *,
        goal: Optional[str] = None,
        risk_tier: Optional[str] = None,
        atlas_ids: Optional[Sequence[str]] = None,
        on_approval: Optional[OnApproval] = None,
        wait_for_approval: Optional[float] = None,
        executors: Optional[Mapping[str, Callable[..., Any]]] = None,
    ) -> GovernedTools:
        """Governed tools of a session: its own executors, calls checked and
        traced, approvals decided in band (see `cra.agents.GovernedTools`)."""
        return GovernedTools(
            self,
            session_id,
            goal=goal,
            risk_tier=risk_tier,
            atlas_ids=atlas_ids,
            on_approval=on_approval,
            wait_for_approval=wait_for_approval,
            executors=executors,
        )

    # -- trace ------------------------------------------------------------
    def flush(self, timeout: Optional[float] = None) -> bool:
        """True once every event recorded before the call is written and synced."""
        return self._core.flush(timeout)

    def close(self, timeout: Optional[float] = None) -> bool:
        """Flushes and stops the background thread; later records are refused."""
        _LIVE.discard(self)
        return self._core.close(timeout)

    @property
    def closed(self) -> bool:
        return self._core.closed

    @property
    def hash_algorithm(self) -> str:
        return self._core.hash_algorithm

    def events(
        self,
        session_id: str,
        *,
        event_type: Optional[str] = None,
        since_sequence: Optional[int] = None,
        limit: Optional[int] = None,
    ) -> List[TRACEEvent]:
        """A session's events (everything recorded so far), in sequence order."""
        self._settle()
        core = self._core.events(session_id, event_type, since_sequence, limit)
        return [TRACEEvent(e) for e in core]

    def verify(
        self, session_id: str, *, public_key: Optional[PathLike] = None
    ) -> ChainVerification:
        """Verifies a session's chain (everything recorded so far). With
        `public_key` (SPKI PEM), its signed checkpoints too: `signatures`
        says how much of the chain they cover, and any fault makes the
        result invalid."""
        self._settle()
        v = ChainVerification._from_core(self._core.verify(session_id))
        if public_key is None:
            return v
        signed = self._core.verify_signatures(session_id, os.fspath(public_key))
        return dataclasses.replace(v, signatures=signed, valid=v.valid and not signed["faults"])

    def export_jsonl(self, path: PathLike, session_id: Optional[str] = None) -> int:
        """Writes the events held in memory (one session or all) to a
        `.trace.jsonl` file, atomically; returns how many were written."""
        self._settle()
        return self._core.export_jsonl(os.fspath(path), session_id)

    def stats(self) -> Dict[str, int]:
        """Counters: recorded, sealed, written, dropped, queue depth, high-water mark, …"""
        return self._core.stats()

    def _settle(self) -> None:
        if not self._core.closed:
            self._core.flush(None)

    # -- lifecycle --------------------------------------------------------
    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        s = self.stats()
        return (
            f"<cra.Runtime {self.hash_algorithm} sessions={s['sessions']} "
            f"recorded={s['recorded']} written={s['written']}>"
        )


def _parameters(request: Mapping[str, Any]) -> Dict[str, Any]:
    """An execute request's parameters, as the executor is called with them
    (a request that got this far has checked ones)."""
    params = request["execution"].get("parameters") or {}
    return dict(params)


def _flush_all_at_exit() -> None:
    for rt in list(_LIVE):
        try:
            rt._core.close(EXIT_FLUSH_SECONDS)
        except Exception:
            import traceback

            traceback.print_exc()


def _after_fork_in_child() -> None:
    for rt in list(_LIVE):
        rt._core._after_fork()


atexit.register(_flush_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
