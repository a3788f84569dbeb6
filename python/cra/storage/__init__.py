"""Durable, queryable homes for traces. Each store is a trace sink (pass it
as `cra.Runtime(sinks=[store])`: the flush thread hands it sealed batches)
and answers the same queries:

    write_batch(events)            events(session_id, event_type=, since_sequence=, limit=)
    sessions(status=, limit=, offset=)   verify(session_id)   retention(max_age_seconds=, max_events=)

A store reopened after a restart continues each chain (`resume(runtime,
session_id)`), and retention never cuts a chain without recording where the
kept part starts (its sequence and the hash it links to).
"""

from __future__ import annotations

from .base import Store
from .jsonl import JSONLStore
from .memory import MemoryStore
from .postgres import PostgresStore, is_postgres_url
from .sqlite import SQLiteStore

__all__ = [
    "JSONLStore",
    "MemoryStore",
    "PostgresStore",
    "SQLiteStore",
    "Store",
    "is_postgres_url",
    "open_store",
]


def open_store(address: str, *, ready: bool = True) -> SQLiteStore | PostgresStore:
    """The store at `address`: PostgreSQL for a `postgresql://` URL (with
    `ready=False`, a database of an older schema is opened as it is, to be
    read), else the SQLite file at that path."""
    if is_postgres_url(address):
        return PostgresStore(address, ready=ready)
    return SQLiteStore(address)
