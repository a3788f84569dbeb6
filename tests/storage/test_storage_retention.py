"""Retention of stores (issue 5), by count and by age: old events are cut
without losing the anchor where the kept chain starts, and a chain cut
whole is still continued from it.
"""

from __future__ import annotations

import cra
import pytest
from audit_helpers import (
    Recording,
    StoreOpener,
)
from conftest import ZEROS, chain_is_linked
from cra.errors import CraError
from cra.timing import ManualClock
from execute_helpers import START_TS

#: 2001-09-09: far enough in the past for any age cut-off.
LONG_AGO = 1_000_000_000.0


#: 2096-10-02: newer than any age cut-off.
FAR_AHEAD = 4_000_000_000.0


def test_retention_by_count_keeps_the_anchor(opener: StoreOpener, rec: Recording) -> None:
    sid = rec.session(ticks=11)
    short = rec.session(ticks=1)
    full = rec.dicts(sid)
    store = opener.store
    assert store is not None
    assert store.retention(max_events=4) == 8
    kept = store.events(sid)
    assert kept == full[8:]
    row = store.session(sid)
    assert (row["first_sequence"], row["anchor_hash"]) == (8, full[7]["event_hash"])
    assert row["event_count"] == 4
    report = store.verify(sid)
    assert report.valid and report.event_count == 4
    # A session within the limit is left alone.
    assert len(store.events(short)) == 2
    assert store.session(short)["first_sequence"] == 0
    assert store.session(short)["anchor_hash"] == ZEROS
    # Nothing more to drop.
    assert store.retention(max_events=4) == 0

    for i in range(3):
        rec.rt.record(sid, "x.after", {"i": i})
    rec.rt.end_session(sid)
    rec.close()
    chain_is_linked(store.events(sid), 8, full[7]["event_hash"])
    assert store.verify(sid).valid

    store = opener.reopen()
    row = store.session(sid)
    assert (row["first_sequence"], row["anchor_hash"]) == (8, full[7]["event_hash"])
    assert row["status"] == "ended"
    assert row["agent_id"] == "agent-1"
    assert row["started_at"] == START_TS
    report = store.verify(sid)
    assert report.valid and report.event_count == 8


def test_retention_by_age_keeps_the_anchor(opener: StoreOpener) -> None:
    rec = Recording(opener, start=LONG_AGO)
    try:
        sid = rec.session(ticks=4)
        rec.clock.set(FAR_AHEAD)
        for i in range(3):
            rec.rt.record(sid, "x.recent", {"i": i})
        full = rec.dicts(sid)
        store = opener.store
        assert store is not None
        assert store.retention(max_age_seconds=3600) == 5
        assert [e["event_type"] for e in store.events(sid)] == ["x.recent"] * 3
        row = store.session(sid)
        assert (row["first_sequence"], row["anchor_hash"]) == (5, full[4]["event_hash"])
        assert store.verify(sid).valid
        rec.rt.record(sid, "x.recent", {"i": 3})
        rec.rt.flush()
        assert store.verify(sid).valid
    finally:
        rec.close()
    store = opener.reopen()
    assert store.session(sid)["first_sequence"] == 5
    report = store.verify(sid)
    assert report.valid and report.event_count == 4


def test_retention_that_drops_a_whole_chain_still_continues_it(opener: StoreOpener) -> None:
    rec = Recording(opener, start=LONG_AGO)
    sid = rec.session(ticks=3)
    ended = rec.session("agent-2", ticks=1)
    rec.rt.end_session(ended)
    last = rec.dicts(sid)[-1]
    rec.close()
    store = opener.store
    assert store is not None
    assert store.retention(max_age_seconds=3600) == 4 + 3
    assert store.events(sid) == []
    row = store.session(sid)
    assert (row["first_sequence"], row["anchor_hash"]) == (4, last["event_hash"])
    assert store.verify(sid).valid

    store = opener.reopen()
    row = store.session(sid)
    assert (row["status"], row["agent_id"], row["goal"]) == ("active", "agent-1", "Work")
    assert (row["last_sequence"], row["last_hash"]) == (3, last["event_hash"])
    assert store.session(ended)["status"] == "ended"

    clock = ManualClock(start=FAR_AHEAD)
    with cra.Runtime(sinks=[store], clock=clock) as rt:
        assert store.resume(rt, sid) == sid
        rt.record(sid, "x.after", {})
        rt.flush()
        with pytest.raises(CraError) as e:
            store.resume(rt, ended)
        assert e.value.code == "SESSION_ENDED"
    (after,) = store.events(sid)
    assert (after["sequence"], after["previous_event_hash"]) == (4, last["event_hash"])
    assert store.verify(sid).valid
