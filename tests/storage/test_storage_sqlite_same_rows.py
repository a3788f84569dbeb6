"""Every store describes a session alike: the session-row rules live once,
in the core (`rust/sqlite/rows.rs`), and the SQLite store (its native sink,
and `write_batch` called directly with core events, dicts or JSON text),
the memory store and the JSON Lines store (fed the same batches, and
reopened from its files after a restart) leave identical session rows, and
the SQLite store's events table holds every event's text, for a generated
mix of sessions interleaved in multi-session batches, started and ended
mid-batch, continued by a second runtime after the stores were reopened and
trimmed by retention.
"""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path
from typing import Any

import cra
import pytest
from conftest import ListSink
from cra.storage import JSONLStore, MemoryStore, SQLiteStore
from test_storage_sqlite import SCHEMA_V0


def _file_rows(path: Path) -> tuple[dict[str, dict[str, Any]], list[tuple[str, int, str, str]]]:
    """The sessions table by id, and the events table as (session id,
    sequence, event type, text) in session and sequence order, read from
    the file once every connection to it is closed."""
    db = sqlite3.connect(path)
    try:
        cur = db.execute("SELECT * FROM sessions")
        names = [d[0] for d in cur.description]
        sessions = {r[0]: dict(zip(names, r)) for r in cur.fetchall()}
        events = db.execute(
            "SELECT k.session_id, e.sequence, e.event_type, e.event FROM events e"
            " JOIN session_keys k ON k.session = e.session ORDER BY k.session_id, e.sequence"
        ).fetchall()
    finally:
        db.close()
    return sessions, events


def _reference_rows(reference: MemoryStore) -> list[tuple[str, int, str, str]]:
    out = []
    for sid in sorted(reference._events):
        for text in reference._events[sid]:
            e = json.loads(text)
            out.append((sid, e["sequence"], e["event_type"], text))
    return out


def _play(rt: cra.Runtime, rng: random.Random, sids: list[str], steps: int) -> None:
    """Records `steps` events across the sessions in random turns, starting
    and ending sessions on the way and cutting batches with flush()."""
    for step in range(steps):
        roll = rng.random()
        if roll < 0.04 or not sids:
            sids.append(rt.create_session(f"agent-{len(sids)}", f"goal {step}"))
        elif roll < 0.07 and len(sids) > 1:
            rt.end_session(sids.pop(rng.randrange(len(sids))))
        else:
            rt.record(rng.choice(sids), "x.step", {"step": step, "pad": "p" * rng.randrange(50)})
        if rng.random() < 0.02:
            assert rt.flush(timeout=30)
    assert rt.flush(timeout=30)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_store_leaves_the_same_session_rows(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    path = tmp_path / "store.db"
    reference = MemoryStore()
    jsonl = JSONLStore(tmp_path / "jsonl")

    # A first runtime: the flush thread writes the store natively.
    store = SQLiteStore(path)
    with cra.Runtime(sinks=[reference, store, jsonl]) as rt:
        open_sids = [rt.create_session("agent-0", "first")]
        _play(rt, rng, open_sids, 1_500)
        for sid in open_sids[:2]:
            rt.end_session(sid)
        open_sids = open_sids[2:]
        assert rt.flush(timeout=30)
    store.close()
    jsonl.close()
    assert JSONLStore(tmp_path / "jsonl")._rows == reference._rows

    # Restart: the stores reopened, retention, the open sessions continued.
    store = SQLiteStore(path)
    jsonl = JSONLStore(tmp_path / "jsonl")
    assert store.retention(max_events=40) == reference.retention(max_events=40) > 0
    assert jsonl.retention(max_events=40) > 0
    jsonl.close()
    jsonl = JSONLStore(tmp_path / "jsonl")  # rows from the cut files and their anchors
    assert jsonl.sessions() == reference.sessions()
    with cra.Runtime(sinks=[reference, store, jsonl]) as rt:
        for sid in open_sids:
            assert store.resume(rt, sid) == sid
        _play(rt, rng, open_sids, 1_000)
    assert store.sessions() == reference.sessions() == jsonl.sessions()

    # Events sealed elsewhere, written directly as core events, dicts and JSON text.
    capture = ListSink()
    with cra.Runtime(sinks=[capture]) as other:
        sids = [other.create_session(f"direct-{kind}", "direct") for kind in range(3)]
        for i in range(30):
            other.record(sids[i % 3], "x.direct", {"i": i})
        other.end_session(sids[0])
        other.flush()
    # The third session's session.started is left out: its row takes
    # started_at from the first event written.
    third = [e for e in capture.events if e.session_id == capture.events[-1].session_id]
    rest = [e for e in capture.events if e not in third]
    batches: list[list[Any]] = [
        rest[:20],
        [e.to_dict() for e in rest[20:]],
        [e.to_json() for e in third[1:]],
    ]
    for batch in batches:
        store.write_batch(batch)
        reference.write_batch(batch)
        jsonl.write_batch(batch)
    store.close()
    jsonl.close()

    sessions, events = _file_rows(path)
    assert sessions == {sid: row for sid, row in reference._rows.items()} == jsonl._rows
    assert JSONLStore(tmp_path / "jsonl")._rows == jsonl._rows
    assert events == _reference_rows(reference)
    assert {r["status"] for r in sessions.values()} == {"active", "ended"}
    assert any(r["first_sequence"] > 0 for r in sessions.values())
    assert sessions[third[0].session_id]["started_at"] == third[1].timestamp


def test_a_store_of_the_old_layout_takes_the_same_rows(tmp_path: Path) -> None:
    # Batches of more rows than one INSERT statement holds, three sessions
    # interleaved, into the layout of schema version 0 (events by session
    # id, with a timestamp column).
    capture = ListSink()
    with cra.Runtime(sinks=[capture]) as rt:
        sids = [rt.create_session("agent", "old layout") for _ in range(3)]
        for i in range(300):
            rt.record(sids[i % 3], "x.step", {"i": i})
        rt.end_session(sids[0])
        rt.flush()
    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(SCHEMA_V0)
    db.close()
    store = SQLiteStore(path)
    reference = MemoryStore()
    assert store.schema_version == 0
    for batch in (capture.events[:150], capture.events[150:]):
        store.write_batch(batch)
        reference.write_batch(batch)
    assert store.sessions() == reference.sessions()
    store.close()
    db = sqlite3.connect(path)
    stored = db.execute(
        "SELECT session_id, sequence, event_type, timestamp, event FROM events"
        " ORDER BY session_id, sequence"
    ).fetchall()
    db.close()
    assert stored == sorted(
        (e.session_id, e.sequence, e.event_type, e.timestamp, e.to_json()) for e in capture.events
    )
