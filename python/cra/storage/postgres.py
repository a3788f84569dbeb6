"""`PostgresStore`: a PostgreSQL database as the shared store of several
`cra serve` replicas (`cra serve --store postgresql://…`).

The connection, schema and writer are the Rust core's
(`_core.PostgresDatabase`, `rust/pg/`). As a sink of a runtime it is
written by the flush thread natively, without the GIL, and it is the
chains' authority: each batch locks its sessions' rows, and a session whose
chain another replica extended meanwhile has its events re-sealed onto the
stored head, so a chain written by several replicas is still one chain
(`specs/storage.md`). Its queries and verification are the same as every
store's (`Store`).

A new database gets the latest schema when a store opens it; an older one
is upgraded only by `cra store migrate --store URL`, and a store refuses to
open it until then.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Sequence

from .. import _core
from ..errors import CraError, NotFoundError
from ..trace import TRACEEvent
from .base import Store

__all__ = ["PostgresStore", "is_postgres_url"]


def is_postgres_url(text: str) -> bool:
    """True for a store address that names PostgreSQL."""
    return text.startswith(("postgresql://", "postgres://"))


class PostgresStore(Store):
    """A PostgreSQL database: events keyed by session and sequence, the
    sessions' rows and owners, and the counters of rate limits and budgets."""

    def __init__(self, url: str, *, ready: bool = True) -> None:
        self._db = _core.PostgresDatabase(url)
        #: Whether a runtime was given this store as a sink (`_native_sink`).
        self._sink_made = False
        #: The address without its password.
        self.url: str = self._db.url
        if ready:
            self._db.ready()

    @staticmethod
    def latest_schema_version() -> int:
        """The schema version this cra writes."""
        return int(_core.PostgresDatabase.latest_schema_version())

    @property
    def schema_version(self) -> int:
        return int(self._db.schema_version)

    def migrate(self, target: Optional[int] = None) -> tuple[int, int]:
        """Upgrades the schema (to `target`, default the latest); returns
        the versions before and after."""
        before, after = self._db.migrate(target)
        return int(before), int(after)

    def write_batch(self, events: Sequence[TRACEEvent]) -> None:
        """Stores sealed events in one transaction, as a runtime's flush
        thread does (a session whose stored chain moved on is re-sealed
        onto its head)."""
        self._db.write_events([e._e for e in events])

    def _native_sink(self) -> _core.PostgresSink:
        """The hook `cra.Runtime(sinks=[...])` looks for: the flush thread
        writes this store itself and assigns the chains' sequences."""
        self._sink_made = True
        return self._db.sink()

    def share_state(self, runtime: Any) -> None:
        """Has `runtime` count its rate limits and budgets, keep its
        resolutions and decide its approvals in this store, so that limits
        hold across every runtime sharing it and an execute (or a decision)
        on one may name a resolution (or an approval) made on another.
        The runtime must have this store among its sinks (resolutions are
        written with its events)."""
        if not self._sink_made:
            raise ValueError(
                "share_state needs a runtime that writes to this store: "
                "cra.Runtime(sinks=[store]) first"
            )
        getattr(runtime, "_core", runtime).share_state(self._db)

    def session_status(self, session_id: str) -> Optional[str]:
        """`active` or `ended` as the store has it, or None if not stored."""
        return self._db.session_status(session_id)

    def session_rows_of(
        self, owner: Optional[str] = None, status: Optional[str] = None
    ) -> List[Dict[str, Any]]:
        """The rows of the sessions `owner` (a key id) owns, or of all
        sessions, with `status` if given, oldest first."""
        return [dict(r) for r in self._db.session_rows(owner, status)]

    def approval_session(self, approval_id: str) -> Optional[str]:
        """The session of a stored approval, if any."""
        return self._db.approval_session(approval_id)

    def claim_owner(self, session_id: str, key_id: str) -> bool:
        """Makes `key_id` the owner of a new session; False if the session
        has an owner (or events) already."""
        return bool(self._db.claim_owner(session_id, key_id))

    def owner(self, session_id: str) -> Optional[str]:
        return self._db.owner(session_id)

    def session(self, session_id: str) -> Dict[str, Any]:
        row = self._db.session_row(session_id)
        if row is None:
            raise NotFoundError(
                f"session {session_id} is not in this store", code="SESSION_NOT_FOUND"
            )
        return dict(row)

    def _session_rows(self) -> Dict[str, Dict[str, Any]]:
        return {r["session_id"]: dict(r) for r in self._db.session_rows()}

    def _event_texts(self, session_id: str) -> List[str]:
        return list(self._db.event_texts(session_id))

    def events(
        self,
        session_id: str,
        event_type: Optional[str] = None,
        since_sequence: Optional[int] = None,
        limit: Optional[int] = None,
    ) -> List[Dict[str, Any]]:
        """A session's events as dicts, in sequence order, filtered by the
        query itself (`limit=1` reads one row, not the session)."""
        texts = self._db.event_texts(session_id, event_type, since_sequence, limit)
        return [json.loads(t) for t in texts]

    def ping(self) -> Optional[str]:
        """None if the store answers now, else why not (without the password)."""
        try:
            self._db.ping()
        except CraError as e:
            return e.message
        return None

    def flush(self) -> None:
        """Nothing to do: a batch is durable once its transaction commits."""

    def close(self) -> None:
        self._db.close()
