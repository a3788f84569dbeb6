"""JSONLStore specifics (issue 5): one file per session, and a torn tail set
aside on open (copied to a side file, the line ended, no byte changed) and
reported (issue 13, finding 7).
"""

from __future__ import annotations

from pathlib import Path

import cra
from audit_helpers import tear
from cra.storage import JSONLStore


def test_jsonl_store_keeps_one_file_per_session(tmp_path: Path) -> None:
    store = JSONLStore(tmp_path / "traces")
    with cra.Runtime(sinks=[store]) as rt:
        sids = [rt.create_session(f"agent-{n}", "Work") for n in range(3)]
        for i in range(30):
            rt.record(sids[i % 3], "x.tick", {"i": i})
        rt.flush()
    store.close()
    files = sorted((tmp_path / "traces").glob("*.trace.jsonl"))
    assert [f.name for f in files] == sorted(f"{sid}.trace.jsonl" for sid in sids)
    for sid in sids:
        assert store.path_of(sid) == tmp_path / "traces" / f"{sid}.trace.jsonl"
        report = cra.verify_jsonl(store.path_of(sid))
        assert report.valid
        assert list(report) == [sid]
        assert report[sid].event_count == 11


def test_jsonl_store_sets_a_torn_tail_aside_on_open_and_reports_it(tmp_path: Path) -> None:
    store = JSONLStore(tmp_path / "traces")
    with cra.Runtime(sinks=[store]) as rt:
        sid = rt.create_session("agent-1", "Work")
        intact = rt.create_session("agent-2", "Work")
        for i in range(5):
            rt.record(sid, "x.tick", {"i": i})
        rt.flush()
        before = [e.to_dict() for e in rt.events(sid)]
    store.close()
    path = store.path_of(sid)
    size = path.stat().st_size
    torn = tear(path)
    assert cra.verify_jsonl(path).torn_tail is not None

    store = JSONLStore(tmp_path / "traces")
    assert store.repaired == [(str(path), torn)]
    assert store.torn_files == [(str(path), f"{path}.torn-{size}")]
    assert path.stat().st_size == size + torn + 1
    assert path.read_bytes().endswith(b"\n")
    assert store.events(sid) == before
    assert store.verify(sid).valid
    assert store.verify(intact).valid
    report = cra.verify_jsonl(path)
    # The torn line, ended, is line 7: set aside, not a bad line.
    assert report.bad_lines == []
    assert report.torn_lines == [(7, size, torn, f"{path}.torn-{size}")]
    assert report[sid].valid and report.torn_tail is None and report.valid

    with cra.Runtime(sinks=[store]) as rt:
        store.resume(rt, sid)
        rt.record(sid, "x.after", {})
        rt.flush()
    after = store.events(sid)[-1]
    assert (after["sequence"], after["previous_event_hash"]) == (6, before[-1]["event_hash"])
    assert store.verify(sid).valid
    store.close()
    assert JSONLStore(tmp_path / "traces").repaired == []
