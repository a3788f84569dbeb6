"""Exporting a session that retention trimmed (issue #5): the JSONL file
stays pure events, and where its chain starts (the anchor) goes into
`FILE.anchor.json` beside it, which file verification picks up (or
`--anchor FILE`); without it, the error says the file starts mid-chain."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import cra
import pytest
from audit_helpers import STORE_KINDS, StoreOpener, run_cli
from conftest import ZEROS
from cra.errors import IntegrityError, NotFoundError
from cra.storage import Store
from cra.timing import ManualClock
from execute_helpers import START


@pytest.fixture(params=STORE_KINDS)
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreOpener]:
    o = StoreOpener(request.param, tmp_path)
    o.open()
    yield o
    o.close()


def trimmed_session(opener: StoreOpener, ticks: int = 11, keep: int = 4) -> tuple[str, list[str]]:
    """A session of `ticks + 1` events, of which retention keeps the last
    `keep`; its id and the hashes of all its events as recorded."""
    store = opener.store
    rt = cra.Runtime(sinks=[store], clock=ManualClock(start=START))
    sid = rt.create_session("agent-1", "Work")
    for i in range(ticks):
        rt.record(sid, "x.tick", {"i": i})
    rt.flush()
    hashes = [e.event_hash for e in rt.events(sid)]
    rt.close(timeout=10)
    assert store is not None
    assert store.retention(max_events=keep) == ticks + 1 - keep
    return sid, hashes


def sidecar(path: Path) -> Path:
    return Path(f"{path}.anchor.json")


def test_a_trimmed_export_verifies_from_its_anchor(opener: StoreOpener, tmp_path: Path) -> None:
    sid, hashes = trimmed_session(opener)
    store = opener.reopen()
    out = tmp_path / "out.trace.jsonl"
    anchor = store.export(sid, out)
    assert anchor == {
        "session_id": sid,
        "first_sequence": 8,
        "previous_event_hash": hashes[7],
        "hash_algorithm": "sha256",
    }
    # The file is pure events, one a line; the anchor lives beside it.
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [json.loads(t)["sequence"] for t in lines] == [8, 9, 10, 11]
    assert json.loads(sidecar(out).read_text(encoding="utf-8")) == {
        "anchor_version": 1,
        "anchors": [anchor],
    }
    r = cra.verify_jsonl(out)
    assert r.valid
    assert r.anchor_file == str(sidecar(out))
    assert (r[sid].anchored_at, r[sid].event_count) == (8, 4)


def test_an_untrimmed_export_has_no_anchor_and_removes_a_stale_one(
    opener: StoreOpener, tmp_path: Path
) -> None:
    store = opener.store
    assert isinstance(store, Store)
    rt = cra.Runtime(sinks=[store], clock=ManualClock(start=START))
    sid = rt.create_session("agent-1", "Work")
    rt.record(sid, "x.tick", {})
    rt.close(timeout=10)
    out = tmp_path / "out.trace.jsonl"
    sidecar(out).write_text("stale", encoding="utf-8")
    assert store.export(sid, out) is None
    assert not sidecar(out).exists()
    r = cra.verify_jsonl(out)
    assert r.valid and r[sid].anchored_at is None and r.anchor_file is None
    with pytest.raises(NotFoundError):
        store.export("no-such-session", tmp_path / "none.trace.jsonl")


@pytest.fixture
def exported(tmp_path: Path) -> tuple[str, Path, list[str]]:
    """A session trimmed to its last 4 events in an SQLite store, exported."""
    opener = StoreOpener("sqlite", tmp_path)
    opener.open()
    sid, hashes = trimmed_session(opener)
    out = tmp_path / "out.trace.jsonl"
    assert opener.store is not None
    opener.store.export(sid, out)
    opener.close()
    return sid, out, hashes


def test_without_its_anchor_the_file_is_reported_as_starting_mid_chain(
    exported: tuple[str, Path, list[str]],
) -> None:
    sid, out, _ = exported
    for r in (cra.verify_jsonl(out, use_sidecar=False), verify_moved(out)):
        v = r[sid]
        assert not r.valid and v.error == "invalid_genesis" and v.index == 0
        assert v.anchored_at is None
        assert "starts mid-chain, at sequence 8" in (v.message or "")
        assert "anchor" in (v.message or "")


def verify_moved(out: Path) -> cra.FileVerification:
    moved = out.with_name("elsewhere.json")
    sidecar(out).rename(moved)
    try:
        return cra.verify_jsonl(out)
    finally:
        moved.rename(sidecar(out))


def test_an_anchor_file_can_be_named(exported: tuple[str, Path, list[str]]) -> None:
    sid, out, _ = exported
    named = out.with_name("kept-anchor.json")
    sidecar(out).rename(named)
    r = cra.verify_jsonl(out, anchor=named)
    assert r.valid and r[sid].anchored_at == 8 and r.anchor_file == str(named)


def rewrite(path: Path, **changes: object) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["anchors"][0].update(changes)
    path.write_text(json.dumps(doc), encoding="utf-8")


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"previous_event_hash": ZEROS}, "invalid_genesis"),
        ({"previous_event_hash": "f" * 64}, "invalid_genesis"),
        ({"first_sequence": 7}, "sequence_gap"),
        ({"first_sequence": 0}, "sequence_gap"),
        ({"hash_algorithm": "blake3"}, "hash_mismatch"),
    ],
)
def test_a_tampered_anchor_fails(
    exported: tuple[str, Path, list[str]], change: dict[str, object], error: str
) -> None:
    sid, out, _ = exported
    rewrite(sidecar(out), **change)
    r = cra.verify_jsonl(out)
    assert not r.valid and r[sid].error == error and r[sid].index == 0


def test_a_tampered_first_event_fails(exported: tuple[str, Path, list[str]]) -> None:
    sid, out, hashes = exported
    lines = out.read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    first["payload"]["i"] = 99
    out.write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n", encoding="utf-8")
    r = cra.verify_jsonl(out)
    assert not r.valid and (r[sid].error, r[sid].index) == ("hash_mismatch", 0)
    # Linking it elsewhere (and the anchor with it) breaks the link to event 1.
    first = json.loads(lines[0])
    first["previous_event_hash"] = hashes[6]
    out.write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n", encoding="utf-8")
    assert cra.verify_jsonl(out)[sid].error == "invalid_genesis"


def test_an_anchor_for_a_session_not_in_the_file_fails(
    exported: tuple[str, Path, list[str]],
) -> None:
    _, out, _ = exported
    doc = json.loads(sidecar(out).read_text(encoding="utf-8"))
    doc["anchors"].append(dict(doc["anchors"][0], session_id="someone-else"))
    sidecar(out).write_text(json.dumps(doc), encoding="utf-8")
    r = cra.verify_jsonl(out)
    assert not r.valid
    assert r.anchor_faults == [
        "the anchor names session someone-else, which has no events in the file"
    ]


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        '{"anchors": []}',
        '{"anchor_version": 1, "anchors": [{"session_id": "s", "first_sequence": 1}]}',
        '{"anchor_version": 1, "anchors": [{"session_id": "s", "first_sequence": -1,'
        ' "previous_event_hash": "' + "0" * 64 + '"}]}',
        '{"anchor_version": 1, "anchors": [{"session_id": "s", "first_sequence": 1,'
        ' "previous_event_hash": "' + "A" * 64 + '"}]}',
    ],
)
def test_a_malformed_anchor_file_is_an_error(
    exported: tuple[str, Path, list[str]], text: str
) -> None:
    _, out, _ = exported
    sidecar(out).write_text(text, encoding="utf-8")
    with pytest.raises(IntegrityError) as e:
        cra.verify_jsonl(out)
    assert e.value.code == "TRACE_INVALID"
    assert "is not a trace anchor file" in e.value.message


# -- the command line ---------------------------------------------------------------


def test_the_cli_exports_and_verifies_a_trimmed_session(tmp_path: Path) -> None:
    opener = StoreOpener("sqlite", tmp_path)
    opener.open()
    sid, _ = trimmed_session(opener)
    opener.close()
    out = tmp_path / "cli.trace.jsonl"
    x = run_cli("trace", "export", "--store", opener.location, "--session", sid, "--out", out)
    assert x.returncode == 0, x.stderr
    assert "starts at sequence 8" in x.stderr and f"{out}.anchor.json" in x.stderr
    v = run_cli("trace", "verify", out)
    assert v.returncode == 0, v.stdout
    assert f"anchor file {out}.anchor.json" in v.stdout
    assert "verified from the anchor at sequence 8, not from genesis" in v.stdout
    doc = json.loads(run_cli("trace", "verify", out, "--json").stdout)
    assert doc["valid"] and doc["sessions"][0]["anchored_at"] == 8

    moved = tmp_path / "anchor.json"
    sidecar(out).rename(moved)
    bare = run_cli("trace", "verify", out)
    assert bare.returncode == 1
    assert "starts mid-chain, at sequence 8" in bare.stdout
    named = run_cli("trace", "verify", out, "--anchor", moved)
    assert named.returncode == 0 and "at sequence 8" in named.stdout
    both = run_cli("trace", "verify", out, out, "--anchor", moved)
    assert both.returncode == 2 and "exactly one FILE" in both.stderr

    # Standard output cannot carry the anchor: a note says how to get it.
    piped = run_cli("trace", "export", "--store", opener.location, "--session", sid)
    assert piped.returncode == 0
    assert len(piped.stdout.splitlines()) == 4
    assert "starts at sequence 8" in piped.stderr and "--out" in piped.stderr
