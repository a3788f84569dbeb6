"""An SQLiteStore as a runtime's sink is written by the flush thread in
Rust (issue 5): its Python `write_batch` is never called, the flush thread
needs no GIL to ingest, a failing batch surfaces as the core's sink error
and leaves nothing half-written, a subclass that overrides `write_batch`
keeps its override, and a forked child writes through a connection of its own.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import cra
import pytest
from conftest import ListSink, wait_for_child
from cra.errors import SinkError
from cra.storage import SQLiteStore


def _refuse(self: SQLiteStore, events: Any) -> None:
    raise AssertionError("the Python write_batch was called")


def test_the_flush_thread_writes_the_store_without_calling_its_python_write_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SQLiteStore, "write_batch", _refuse)
    store = SQLiteStore(tmp_path / "store.db")
    try:
        with cra.Runtime(sinks=[store]) as rt:
            sid = rt.create_session("agent-1", "Work")
            for i in range(500):
                rt.record(sid, "x.tick", {"i": i})
            rt.end_session(sid)
            assert rt.flush(timeout=30)
            assert rt.stats()["sink_errors"] == 0
        assert [e["sequence"] for e in store.events(sid)] == list(range(502))
        row = store.session(sid)
        assert (row["status"], row["event_count"], row["agent_id"]) == ("ended", 502, "agent-1")
        assert store.verify(sid).valid
    finally:
        store.close()


def test_the_store_ingests_while_a_python_thread_holds_the_gil(tmp_path: Path) -> None:
    # With a switch interval of 100 s this thread keeps the GIL while it
    # spins (nothing in the loop releases it): a flush thread that needed
    # the GIL could not write a single batch before the deadline.
    store = SQLiteStore(tmp_path / "store.db")
    rt = cra.Runtime(sinks=[store])
    try:
        sid = rt.create_session("agent-1", "Work")
        for i in range(2_000):
            rt.record(sid, "x.tick", {"i": i})
        previous = sys.getswitchinterval()
        sys.setswitchinterval(100.0)
        try:
            deadline = time.monotonic() + 10.0
            written = rt.stats()["written"]
            while written < 2_001 and time.monotonic() < deadline:
                written = rt.stats()["written"]
        finally:
            sys.setswitchinterval(previous)
        assert written == 2_001
        assert rt.flush(timeout=30)
        assert store.session(sid)["event_count"] == 2_001
    finally:
        rt.close()
        store.close()


def test_a_subclass_that_overrides_write_batch_is_called(tmp_path: Path) -> None:
    class Counting(SQLiteStore):
        def __init__(self, path: Path) -> None:
            super().__init__(path)
            self.calls = 0

        def write_batch(self, events: Any) -> None:
            self.calls += 1
            super().write_batch(events)

    store = Counting(tmp_path / "store.db")
    assert store._native_sink() is None
    try:
        with cra.Runtime(sinks=[store]) as rt:
            sid = rt.create_session("agent-1", "Work")
            rt.record(sid, "x.tick", {})
            assert rt.flush(timeout=30)
        assert store.calls >= 1
        assert store.session(sid)["event_count"] == 2
    finally:
        store.close()


def test_a_subclass_that_overrides_flush_is_called(tmp_path: Path) -> None:
    class Flushing(SQLiteStore):
        flushes = 0

        def flush(self) -> None:
            self.flushes += 1
            super().flush()

    store = Flushing(tmp_path / "store.db")
    try:
        with cra.Runtime(sinks=[store]) as rt:
            rt.create_session("agent-1", "Work")
            assert rt.flush(timeout=30)
        assert store.flushes >= 1
    finally:
        store.close()


def test_an_in_memory_store_is_written_through_its_own_connection() -> None:
    store = SQLiteStore(":memory:")
    try:
        with cra.Runtime(sinks=[store]) as rt:
            sid = rt.create_session("agent-1", "Work")
            rt.record(sid, "x.tick", {})
            assert rt.flush(timeout=30)
        assert [e["event_type"] for e in store.events(sid)] == ["session.started", "x.tick"]
        assert store.session(sid)["event_count"] == 2
    finally:
        store.close()


def test_a_failing_batch_is_a_sink_error_kept_whole_and_written_once_it_can_be(
    tmp_path: Path,
) -> None:
    # The store's file already holds event 3 of the session (sealed by
    # another runtime, written directly): the flush thread's batch of events
    # 1-5 fails on it, nothing of it is written, flush() raises the error.
    store = SQLiteStore(tmp_path / "store.db")
    rt = cra.Runtime(sinks=[store])
    try:
        sid = rt.create_session("agent-1", "Work")
        assert rt.flush(timeout=30)
        capture = ListSink()
        with cra.Runtime(sinks=[capture]) as probe:
            probe.create_session("agent-1", "Work", session_id=sid)
            for i in range(3):
                probe.record(sid, "x.tick", {"i": i})
            probe.flush()
        conflicting = capture.events[-1]
        assert (conflicting.session_id, conflicting.sequence) == (sid, 3)
        store.write_batch([conflicting])
        before = store.session(sid)
        for i in range(5):
            rt.record(sid, "x.tick", {"i": i})
        with pytest.raises(SinkError) as exc:
            rt.flush(timeout=30)
        assert exc.value.code == "TRACE_SINK_FAILED" and exc.value.recoverable
        assert "STORE_CONSTRAINT" in exc.value.message
        assert rt.stats()["sink_errors"] >= 1
        assert store.session(sid) == before  # nothing of the batch
        assert [e["sequence"] for e in store.events(sid)] == [0, 3]
        # Take the conflicting event away: the kept batch is written whole.
        (first,) = store.events(sid, limit=1)
        store._db.transaction(
            [
                (f"DELETE FROM events WHERE {store._of_session} AND sequence = 3", (sid,)),
                (
                    "UPDATE sessions SET event_count = 1, last_sequence = 0, last_hash = ?"
                    " WHERE session_id = ?",
                    (first["event_hash"], sid),
                ),
            ]
        )
        for _ in range(3):  # a retry may have failed once more before the fix
            try:
                if rt.flush(timeout=30):
                    break
            except SinkError:
                continue
        assert [e["sequence"] for e in store.events(sid)] == list(range(6))
        assert store.session(sid)["event_count"] == 6
        assert store.verify(sid).valid
    finally:
        rt.close()
        store.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_writes_the_store_through_a_connection_of_its_own(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "store.db")
    rt = cra.Runtime(sinks=[store])
    try:
        parent = rt.create_session("parent", "g")
        rt.record(parent, "x.before", {})
        assert rt.flush(timeout=30)
        read, write = os.pipe()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
            pid = os.fork()
        if pid == 0:  # the child: never return into pytest
            code = 1
            try:
                child = rt.create_session("child", "g")
                for i in range(100):
                    rt.record(child, "x.n", {"i": i})
                code = 0 if rt.flush(timeout=20) else 1
                os.write(write, child.encode())
            finally:
                os._exit(code)
        os.close(write)
        wait_for_child(pid)
        child_sid = os.read(read, 100).decode()
        os.close(read)
        rt.record(parent, "x.after", {})  # the parent's writes go on
        assert rt.flush(timeout=30)
        assert store.session(child_sid)["event_count"] == 101
        assert store.verify(child_sid).valid
        assert [e["event_type"] for e in store.events(parent)][1:] == ["x.before", "x.after"]
    finally:
        rt.close()
        store.close()
