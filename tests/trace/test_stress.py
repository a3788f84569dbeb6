"""Nothing is lost: 4 threads record 1,000,000 events into 100 sessions
through a deliberately slow sink and a trace file; every chain verifies and
every count matches exactly."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import cra
import pytest

THREADS = 4
SESSIONS = 100
TOTAL = 1_000_000
PER_THREAD = TOTAL // THREADS


class SlowSink:
    """Sleeps on every batch and checks each session's sequence as it goes."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.out_of_order = 0

    def write_batch(self, events: list[cra.TRACEEvent]) -> None:
        time.sleep(0.001)
        for e in events:
            sid = e.session_id
            if e.sequence != self.counts[sid]:
                self.out_of_order += 1
            self.counts[sid] += 1


@pytest.mark.slow
def test_a_million_events_from_four_threads(tmp_path: Path) -> None:
    path = tmp_path / "stress.trace.jsonl"
    sink = SlowSink()
    rt = cra.Runtime(trace_file=path, sinks=[sink], memory_limit=2 * (TOTAL + SESSIONS))
    sids = [rt.create_session(agent_id=f"agent-{n}", goal="stress") for n in range(SESSIONS)]
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            record = rt.record
            for i in range(PER_THREAD):
                record(sids[(i * THREADS + t) % SESSIONS], "x.tick", {"t": t, "i": i})
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert rt.flush(timeout=300)

    expected = TOTAL + SESSIONS
    s = rt.stats()
    assert s["recorded"] == s["sealed"] == s["written"] == expected
    assert s["dropped"] == 0 and s["orphaned"] == 0 and s["evicted_events"] == 0
    per_session = 1 + TOTAL // SESSIONS
    assert sink.out_of_order == 0
    assert sink.counts == dict.fromkeys(sids, per_session)
    for sid in sids:
        v = rt.verify(sid)
        assert v.valid and v.event_count == per_session, (sid, v)
    rt.close()

    report = cra.verify_jsonl(path)
    assert report.valid and report.lines == expected
    assert {sid: v.event_count for sid, v in report.sessions.items()} == dict.fromkeys(
        sids, per_session
    )
