"""`cra.integrations.otel.OTelSink`: a runtime's TRACE events exported to an
OpenTelemetry SDK provider, one to one: a span per session, a span event per
TRACE event, a child span per execution outcome, times from the events."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import cra
import pytest
from cra.timing import ManualClock

pytest.importorskip("opentelemetry.sdk.trace")

from cra.integrations.otel import (
    MAX_FIELDS,
    MAX_STRING,
    OTelSink,
    event_attributes,
    timestamp_ns,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import StatusCode

START = 1_800_000_000.0
AGENT, GOAL = "otel-agent", "Export the trace"
ATLAS: dict[str, Any] = {
    "atlas_version": "1.0",
    "atlas_id": "org.test.otel",
    "version": "1.0.0",
    "name": "OTel test atlas",
    "actions": [
        {"action_id": "api.echo", "name": "Echo"},
        {"action_id": "api.fail", "name": "Fail"},
        {"action_id": "db.drop", "name": "Drop"},
    ],
    "policies": [
        {"policy_id": "never-drop", "type": "deny", "actions": ["db.*"], "reason": "No drops"},
        {"policy_id": "allow-api", "type": "allow", "actions": ["api.*"]},
    ],
}


@dataclass
class Run:
    rt: cra.Runtime
    sink: OTelSink
    exporter: InMemorySpanExporter
    clock: Any
    sid: str

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        spans = list(self.exporter.get_finished_spans())
        return [s for s in spans if name is None or s.name == name or s.name.startswith(name + " ")]

    def session_span(self) -> ReadableSpan:
        (span,) = [
            s for s in self.spans("cra.session") if s.attributes["cra.session_id"] == self.sid
        ]
        return span

    def request(self, op: str, **kw: Any) -> dict[str, Any]:
        ts = self.rt.timestamp()
        if op == "resolve":
            return cra.CARPRequest.resolve(self.sid, AGENT, GOAL, timestamp=ts)
        return cra.CARPRequest.execute(self.sid, AGENT, GOAL, timestamp=ts, **kw)

    def execute(self, resolution: cra.CARPResolution, action_id: str) -> Any:
        req = self.request(
            "execute", resolution_id=resolution.resolution_id, action_id=action_id, parameters={}
        )
        return self.rt.execute(req)


def start_run(provider_kw: dict[str, Any] | None = None) -> Run:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(**(provider_kw or {}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    sink = OTelSink(provider)
    clock = ManualClock(start=START)
    rt = cra.Runtime(sinks=[sink], clock=clock, atlases=[ATLAS])

    def echo(**parameters: Any) -> dict[str, Any]:
        clock.advance(0.25)
        time.sleep(0.02)
        return {"echo": parameters}

    def fail(**parameters: Any) -> Any:
        raise RuntimeError("no luck")

    rt.register_executor("api.echo", echo)
    rt.register_executor("api.fail", fail)
    sid = rt.create_session(AGENT, GOAL)
    return Run(rt, sink, exporter, clock, sid)


def full_session(run: Run) -> None:
    run.clock.advance(1)
    res = run.rt.resolve(run.request("resolve"))
    run.clock.advance(1)
    assert run.execute(res, "api.echo").status == "success"
    run.clock.advance(1)
    assert run.execute(res, "db.drop").status == "denied"
    run.clock.advance(1)
    assert run.execute(res, "api.fail").status == "error"
    run.clock.advance(1)
    run.rt.end_session(run.sid, "completed")
    assert run.rt.flush()


@pytest.fixture
def run() -> Iterator[Run]:
    r = start_run()
    try:
        full_session(r)
        yield r
    finally:
        r.rt.close()
        r.sink.close()


# -- one to one ------------------------------------------------------------------------


def test_every_event_is_a_span_event_of_the_session_span(run: Run) -> None:
    events = run.rt.events(run.sid)
    span = run.session_span()
    assert [e.name for e in span.events] == [e.event_type for e in events]
    for ev, se in zip(events, span.events):
        assert se.timestamp == timestamp_ns(ev.timestamp)
        assert se.attributes is not None
        assert se.attributes["cra.event.sequence"] == ev.sequence
        assert se.attributes["cra.event.hash"] == ev.event_hash
        assert se.attributes["cra.event.id"] == ev.event_id
        assert se.attributes["cra.trace_id"] == ev.trace_id
        assert se.attributes["cra.span_id"] == ev.span_id
        assert dict(se.attributes) == event_attributes(ev)


def test_the_session_span_carries_the_session(run: Run) -> None:
    events = run.rt.events(run.sid)
    span = run.session_span()
    attrs = span.attributes
    assert attrs is not None
    assert attrs["cra.session_id"] == run.sid
    assert attrs["cra.agent_id"] == AGENT
    assert attrs["cra.goal"] == GOAL
    assert attrs["cra.trace_id"] == events[0].trace_id
    assert attrs["cra.session.reason"] == "completed"
    assert attrs["cra.session.duration_ms"] == events[-1].payload["duration_ms"]
    assert span.start_time == timestamp_ns(events[0].timestamp)
    assert span.end_time == timestamp_ns(events[-1].timestamp)
    assert span.end_time - span.start_time == 5_250_000_000
    assert span.parent is None
    assert "cra.session.unfinished" not in attrs


def test_executions_are_child_spans_with_their_duration(run: Run) -> None:
    session = run.session_span()
    outcomes = [
        e
        for e in run.rt.events(run.sid)
        if e.event_type in ("action.executed", "action.failed", "action.denied")
    ]
    spans = sorted(run.spans("cra.execute"), key=lambda s: s.attributes["cra.event.sequence"])
    assert [s.name for s in spans] == [
        "cra.execute api.echo",
        "cra.execute db.drop",
        "cra.execute api.fail",
    ]
    assert len(spans) == len(outcomes)
    for ev, span in zip(outcomes, spans):
        assert span.parent is not None
        assert span.parent.span_id == session.context.span_id
        assert span.context.trace_id == session.context.trace_id
        assert span.attributes["cra.event.hash"] == ev.event_hash
        assert span.attributes["cra.span_id"] == ev.span_id
        assert span.attributes["cra.action_id"] == ev.payload["action_id"]
        assert span.end_time == timestamp_ns(ev.timestamp)
    ran, denied, failed = spans
    assert ran.attributes["cra.outcome"] == "executed"
    assert ran.attributes["cra.execution_id"] == outcomes[0].payload["execution_id"]
    assert ran.end_time - ran.start_time == int(outcomes[0].payload["duration_ms"] * 1_000_000)
    assert ran.end_time - ran.start_time >= 20_000_000
    assert denied.attributes["cra.outcome"] == "denied"
    assert denied.attributes["cra.policy_id"] == "never-drop"
    assert denied.start_time == denied.end_time
    assert failed.attributes["cra.outcome"] == "failed"
    assert failed.status.status_code == StatusCode.ERROR
    assert failed.attributes["cra.error_code"] == failed.status.description
    assert ran.status.status_code == StatusCode.UNSET


def test_no_span_is_left_open_or_ended_twice(run: Run) -> None:
    assert run.sink.open_sessions() == []
    names = [s.name for s in run.spans()]
    assert names.count("cra.session") == 1
    assert len(names) == 4
    run.sink.close()
    run.sink.close()
    assert len(run.spans()) == 4


# -- open sessions, late events, odd payloads -------------------------------------------


def test_close_ends_open_sessions_once() -> None:
    r = start_run()
    try:
        r.rt.record(r.sid, "x.note", {"text": "still working"})
        assert r.rt.flush()
        assert r.spans("cra.session") == []
        assert r.sink.open_sessions() == [r.sid]
        r.sink.close()
        r.sink.close()
        (span,) = r.spans("cra.session")
        assert span.attributes["cra.session.unfinished"] is True
        assert [e.name for e in span.events] == ["session.started", "x.note"]
        # After close the sink ignores further batches.
        r.rt.end_session(r.sid)
        assert r.rt.flush()
        assert len(r.spans()) == 1
    finally:
        r.rt.close()


def test_events_after_the_session_span_ended_become_child_spans() -> None:
    r = start_run()
    try:
        r.rt.end_session(r.sid)
        assert r.rt.flush()
        (session,) = r.spans("cra.session")
        late = r.rt.events(r.sid)[0]
        r.sink.write_batch([late])
        (span,) = r.spans("cra.event")
        assert span.parent is not None and span.parent.span_id == session.context.span_id
        assert span.attributes["cra.event.hash"] == late.event_hash
        assert span.start_time == span.end_time == timestamp_ns(late.timestamp)
    finally:
        r.rt.close()
        r.sink.close()


def test_a_child_session_links_to_its_parent() -> None:
    r = start_run()
    try:
        child = r.rt.create_session(AGENT, "Sub task", parent_session_id=r.sid)
        r.rt.end_session(child)
        r.rt.end_session(r.sid)
        assert r.rt.flush()
        spans = {s.attributes["cra.session_id"]: s for s in r.spans("cra.session")}
        (link,) = spans[child].links
        assert link.context.span_id == spans[r.sid].context.span_id
        assert spans[child].attributes["cra.parent_session_id"] == r.sid
    finally:
        r.rt.close()
        r.sink.close()


def test_odd_payloads_are_bounded_and_never_raise() -> None:
    r = start_run()
    try:
        payload: dict[str, Any] = {f"k{i:03}": i for i in range(100)}
        payload.update(
            {
                "big": 10**40,
                "long": "x" * 5000,
                "nested": {"a": 1},
                "mixed": [1, "a"],
                "names": ["a", "b"],
                "none": None,
                "k" * 100: "long key",
            }
        )
        r.rt.record(r.sid, "x.odd.type", payload)
        r.rt.record(
            r.sid,
            "x.few",
            {
                "big": 10**40,
                "long": "x" * 5000,
                "nested": {},
                "names": ["a", "b"],
                "mixed": [1, "a"],
            },
        )
        assert r.rt.flush()
        r.sink.close()
        (span,) = r.spans("cra.session")
        odd, few = span.events[1], span.events[2]
        assert odd.name == "x.odd.type"
        assert len([k for k in odd.attributes if k.startswith("cra.payload.")]) == MAX_FIELDS
        attrs = few.attributes
        assert attrs["cra.payload.big"] == str(10**40)
        assert len(attrs["cra.payload.long"]) == MAX_STRING
        assert attrs["cra.payload.names"] == ("a", "b")
        assert "cra.payload.nested" not in attrs and "cra.payload.mixed" not in attrs
    finally:
        r.rt.close()


def test_a_broken_event_is_skipped(caplog: pytest.LogCaptureFixture) -> None:
    r = start_run()
    try:
        r.sink.write_batch([object()])  # type: ignore[list-item]
        assert r.rt.flush()
        assert r.sink.open_sessions() == [r.sid]
        assert "could not export" in caplog.text
    finally:
        r.rt.close()
        r.sink.close()


def test_timestamps() -> None:
    assert timestamp_ns("1970-01-01T00:00:01.000001Z") == 1_000_001_000
    assert timestamp_ns("2027-03-04T05:06:07.000089Z") == 1_804_136_767_000_089_000
    assert timestamp_ns("not a time") is None


def test_import_cra_does_not_import_opentelemetry() -> None:
    code = "import sys, cra; print(any(m.startswith('opentelemetry') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
