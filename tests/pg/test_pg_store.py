"""The PostgreSQL store as a runtime's sink (`cra.storage.PostgresStore`):
events and rows kept like SQLite's, one chain across runtimes that share
it, limits counted in it, its schema versions and owners."""

from __future__ import annotations

import subprocess
import sys
import threading
from typing import Any, List

import cra
import pytest
from cra.errors import CraError
from cra.storage import PostgresStore

RATE_ATLAS: dict[str, Any] = {
    "atlas_version": "1.0",
    "atlas_id": "test.shared.limits",
    "version": "1.0.0",
    "name": "Shared limits",
    "description": "A global rate limit and an agent budget",
    "actions": [
        {"action_id": "api.call", "name": "Call", "description": "Calls the API"},
        {"action_id": "api.spend", "name": "Spend", "description": "Spends credit"},
    ],
    "policies": [
        {
            "policy_id": "five-a-minute",
            "type": "rate_limit",
            "actions": ["api.call"],
            "parameters": {"max_calls": 5, "window_seconds": 60, "scope": "global"},
        },
        {
            "policy_id": "credit",
            "type": "budget",
            "actions": ["api.spend"],
            "parameters": {"limit": 3, "costs": {"api.spend": 1}, "scope": "agent"},
        },
        {"policy_id": "allow", "type": "allow", "actions": ["api.*"]},
    ],
}


def runtime_on(store: PostgresStore, **kw: Any) -> cra.Runtime:
    rt = cra.Runtime(sinks=[store], **kw)
    store.share_state(rt)
    return rt


def test_a_session_is_stored_and_verifies(pg_dsn: str, tmp_path: Any) -> None:
    store = PostgresStore(pg_dsn)
    rt = runtime_on(store)
    sid = rt.create_session("agent-1", "store me")
    for i in range(5):
        rt.record(sid, "x.step", {"i": i, "text": "tab\there\nnewline \\ backslash"})
    rt.end_session(sid)
    assert rt.flush(timeout=10)
    stored = store.events(sid)
    assert [e["event_hash"] for e in stored] == [e.event_hash for e in rt.events(sid)]
    assert stored[1]["payload"]["text"] == "tab\there\nnewline \\ backslash"
    row = store.session(sid)
    assert (row["status"], row["event_count"], row["last_sequence"]) == ("ended", 7, 6)
    assert store.verify(sid).valid
    out = tmp_path / "s.trace.jsonl"
    code = subprocess.call(
        [
            sys.executable,
            "-m",
            "cra",
            "trace",
            "export",
            "--store",
            pg_dsn,
            "--session",
            sid,
            "--out",
            str(out),
        ]
    )
    assert code == 0
    assert cra.verify_jsonl(out).valid
    rt.close()
    store.close()


def test_a_session_moves_to_another_runtime_and_stays_one_chain(pg_dsn: str) -> None:
    store_a, store_b = PostgresStore(pg_dsn), PostgresStore(pg_dsn)
    a, b = runtime_on(store_a), runtime_on(store_b)
    sid = a.create_session("agent-1", "move me")
    a.record(sid, "x.on_a", {})
    assert a.flush(timeout=10)
    store_b.resume(b, sid)
    b.record(sid, "x.on_b", {})
    assert b.flush(timeout=10)
    events = store_a.events(sid)
    assert [e["sequence"] for e in events] == [0, 1, 2]
    assert [e["event_type"] for e in events][1:] == ["x.on_a", "x.on_b"]
    assert store_a.verify(sid).valid
    for rt in (a, b):
        rt.close()


def test_two_runtimes_writing_one_session_never_fork_its_chain(pg_dsn: str) -> None:
    """Both continue the session from the same head; the store re-seals
    each batch onto the head it finds, so the chain stays one."""
    store_a, store_b = PostgresStore(pg_dsn), PostgresStore(pg_dsn)
    a, b = runtime_on(store_a), runtime_on(store_b)
    sid = a.create_session("agent-1", "two writers")
    assert a.flush(timeout=10)
    store_b.resume(b, sid)

    def write(rt: cra.Runtime, name: str) -> None:
        for i in range(200):
            rt.record(sid, f"x.{name}", {"i": i})
            if i % 20 == 0:
                rt.flush(timeout=10)
        rt.flush(timeout=10)

    threads = [threading.Thread(target=write, args=(rt, n)) for rt, n in ((a, "a"), (b, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = store_a.events(sid)
    assert [e["sequence"] for e in events] == list(range(401))
    assert sum(e["event_type"] == "x.a" for e in events) == 200
    assert sum(e["event_type"] == "x.b" for e in events) == 200
    assert store_a.verify(sid).valid
    # Each runtime goes on from the stored head, not from its own.
    a.record(sid, "x.after", {})
    assert a.flush(timeout=10)
    assert store_a.verify(sid).valid and len(store_a.events(sid)) == 402
    for rt in (a, b):
        rt.close()


def test_limits_hold_across_runtimes(pg_dsn: str) -> None:
    """Three runtimes, eight threads: a global 5-a-minute limit admits
    exactly 5, and an agent's budget of 3 is spent once, not per runtime."""
    stores = [PostgresStore(pg_dsn) for _ in range(3)]
    rts = [runtime_on(s) for s in stores]
    for rt in rts:
        rt.load_atlas(RATE_ATLAS)
        rt.register_executor("api.call", lambda: {"ok": True})
        rt.register_executor("api.spend", lambda: {"ok": True})
    results: List[str] = []
    spent: List[str] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def client(i: int) -> None:
        rt = rts[i % 3]
        sid = rt.create_session("agent-shared", f"client {i}")
        res = rt.resolve(cra.CARPRequest.resolve(sid, "agent-shared", "call the api"))
        start.wait()
        for _ in range(2):
            r = rt.execute(
                cra.CARPRequest.execute(
                    sid, "agent-shared", "call", res.resolution_id, "api.call", {}
                )
            )
            s = rt.execute(
                cra.CARPRequest.execute(
                    sid, "agent-shared", "spend", res.resolution_id, "api.spend", {}
                )
            )
            with lock:
                results.append(r.status)
                spent.append(s.status)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("success") == 5, results
    assert spent.count("success") == 3, spent
    for rt in rts:
        rt.close()


def test_a_resolve_sees_the_shared_window(pg_dsn: str) -> None:
    a, b = runtime_on(PostgresStore(pg_dsn)), runtime_on(PostgresStore(pg_dsn))
    for rt in (a, b):
        rt.load_atlas(RATE_ATLAS)
        rt.register_executor("api.call", lambda: {"ok": True})
    sid = a.create_session("agent-1", "fill the window")
    res = a.resolve(cra.CARPRequest.resolve(sid, "agent-1", "call"))
    for _ in range(5):
        assert (
            a.execute(
                cra.CARPRequest.execute(sid, "agent-1", "c", res.resolution_id, "api.call", {})
            ).status
            == "success"
        )
    other = b.create_session("agent-2", "on the other runtime")
    seen = b.resolve(cra.CARPRequest.resolve(other, "agent-2", "call"))
    denied = {d["action_id"]: d for d in seen.to_dict()["denied_actions"]}
    assert denied["api.call"]["reason"] == "rate_limit_exceeded"
    for rt in (a, b):
        rt.close()


def test_an_older_schema_is_refused_until_migrated(pg_dsn: str) -> None:
    old = PostgresStore(pg_dsn, ready=False)
    assert old.migrate(1) == (0, 1)
    with pytest.raises(CraError) as e:
        PostgresStore(pg_dsn)
    assert e.value.code == "SCHEMA_OUTDATED" and "cra store migrate" in e.value.message
    out = subprocess.run(
        [sys.executable, "-m", "cra", "store", "migrate", "--store", pg_dsn],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert f"schema version 1 -> {PostgresStore.latest_schema_version()}" in out.stdout
    assert PostgresStore(pg_dsn).schema_version == PostgresStore.latest_schema_version()
    again = subprocess.run(
        [sys.executable, "-m", "cra", "store", "migrate", "--store", pg_dsn],
        capture_output=True,
        text=True,
    )
    assert "up to date" in again.stdout


def test_owners_are_claimed_once(pg_dsn: str) -> None:
    store = PostgresStore(pg_dsn)
    sid = cra._core.new_id()
    assert store.claim_owner(sid, "key-a")
    assert not store.claim_owner(sid, "key-b")
    assert store.owner(sid) == "key-a"


def test_an_unreachable_store_is_a_readable_error() -> None:
    with pytest.raises(CraError) as e:
        PostgresStore("postgresql://cra:secret@127.0.0.1:1/cra")
    assert e.value.code == "TRACE_UNAVAILABLE"
    assert "secret" not in e.value.message


def test_signed_checkpoints_are_refused_with_a_store_that_reseals(
    pg_dsn: str, tmp_path: Any
) -> None:
    key = tmp_path / "k.pem"
    cra._core.generate_signing_key(str(key))
    with pytest.raises(CraError) as e:
        cra.Runtime(sinks=[PostgresStore(pg_dsn)], signing_key=str(key))
    assert e.value.code == "INVALID_SINKS"


def test_two_chain_authorities_are_refused(pg_dsn: str) -> None:
    with pytest.raises(CraError) as e:
        cra.Runtime(sinks=[PostgresStore(pg_dsn), PostgresStore(pg_dsn)])
    assert e.value.code == "INVALID_SINKS"


def test_sharing_needs_the_store_among_the_sinks(pg_dsn: str) -> None:
    store = PostgresStore(pg_dsn)
    with pytest.raises(ValueError, match="sinks"):
        store.share_state(cra.Runtime())


def test_a_batch_written_again_is_not_stored_twice(pg_dsn: str) -> None:
    """A retried batch whose first commit went through (its answer was
    lost) is recognised, not re-sealed after itself."""
    rt = cra.Runtime()
    sid = rt.create_session("agent-1", "retry")
    for i in range(3):
        rt.record(sid, "x.step", {"i": i})
    assert rt.flush(timeout=10)
    events = rt.events(sid)
    store = PostgresStore(pg_dsn)
    store.write_batch(events)
    store.write_batch(events)
    assert [e["sequence"] for e in store.events(sid)] == [0, 1, 2, 3]
    assert store.verify(sid).valid


def test_a_nul_never_stops_the_store(pg_dsn: str) -> None:
    rt = runtime_on(PostgresStore(pg_dsn))
    with pytest.raises(CraError) as e:
        rt.create_session("agent-1", "goal with a \x00 in it")
    assert e.value.code == "INVALID_REQUEST"
    sid = rt.create_session("agent-1", "payloads may hold one")
    rt.record(sid, "x.step", {"text": "a\x00b"})
    assert rt.flush(timeout=10)
    stored = PostgresStore(pg_dsn).events(sid)
    assert stored[-1]["payload"]["text"] == "a\x00b"
    rt.close()


def test_event_reads_are_filtered_by_the_query(pg_dsn: str) -> None:
    store = PostgresStore(pg_dsn)
    rt = runtime_on(store)
    sid = rt.create_session("agent-1", "filters")
    for i in range(6):
        rt.record(sid, "x.even" if i % 2 == 0 else "x.odd", {"i": i})
    assert rt.flush(timeout=10)
    every = store.events(sid)
    assert [e["sequence"] for e in every] == list(range(7))
    picked = store.events(sid, event_type="x.even", since_sequence=2, limit=2)
    assert [(e["sequence"], e["payload"]["i"]) for e in picked] == [(3, 2), (5, 4)]
    assert [e["sequence"] for e in store.events(sid, limit=1)] == [0]
    rt.close()
