"""OpenTelemetry export of TRACE events: `OTelSink`, a `cra.Runtime` sink.

    from opentelemetry.sdk.trace import TracerProvider
    rt = cra.Runtime(sinks=[OTelSink(TracerProvider())])

Each cra session becomes one span (`cra.session`), opened at the session's
first event and ended at its `session.ended` (after the rest of that batch,
so a signed `trace.checkpoint` sealed behind it still lands on it), or by
`close()` for sessions still open then. Every TRACE event is a span event on
its session's span, at the event's own time, named by its type and carrying
its sequence, hashes, ids and the flat scalar fields of its payload (bounded
in number and length; the payload is already redacted by the runtime). Each
execution outcome (`action.executed`, `action.failed`, or the `action.denied`
of an execute) is also a child span of the session span: it starts
`duration_ms` before the outcome was recorded when the event carries one,
else it has no length. Events of a session whose span has already ended
become zero-length `cra.event` spans under it. The runtime does not close
its sinks: call `sink.close()` after `rt.close()` to end what is still open.

The OpenTelemetry SDK keeps at most 128 events per span by default; for long
sessions raise `SpanLimits(max_events=...)` (or `OTEL_SPAN_EVENT_COUNT_LIMIT`)
on the provider. The sink never raises: the runtime would keep and retry a
batch a sink fails on, and exporting must not duplicate or stop the trace.
This module imports `opentelemetry` (`pip install 'cra[otel]'`); `import cra`
does not.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from opentelemetry import trace as otel_trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, TracerProvider

from .. import _core
from ..trace import TRACEEvent

__all__ = ["OTelSink", "event_attributes", "payload_attributes", "timestamp_ns"]

log = logging.getLogger(__name__)

Scalar = Union[str, bool, int, float]
AttrValue = Union[Scalar, Tuple[str, ...], Tuple[int, ...], Tuple[float, ...], Tuple[bool, ...]]
Attributes = Dict[str, AttrValue]

#: The longest string attribute value kept (longer ones are cut, with "…").
MAX_STRING = 1024
#: The most payload fields made attributes of one event.
MAX_FIELDS = 32
#: The most items of a payload list kept.
MAX_ITEMS = 16
#: The longest payload key made an attribute (longer keys are left out).
MAX_KEY = 64
#: How many ended session spans are remembered for late events and links.
ENDED_MEMORY = 10_000

SESSION_SPAN = "cra.session"
EXECUTION_SPAN = "cra.execute"
LATE_EVENT_SPAN = "cra.event"
OUTCOMES = {"action.executed": "executed", "action.failed": "failed", "action.denied": "denied"}

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_INT64 = (-(2**63), 2**63 - 1)


def timestamp_ns(stamp: str) -> Optional[int]:
    """Nanoseconds since the epoch of an RFC 3339 timestamp (a TRACE event's
    `YYYY-MM-DDTHH:MM:SS.ffffffZ`); None when it cannot be read."""
    try:
        dt = datetime.fromisoformat(stamp.replace("Z", "+00:00").replace("z", "+00:00"))
    except (TypeError, ValueError):
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def _text(value: str, limit: int = MAX_STRING) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _scalar(value: Any) -> Optional[Scalar]:
    """An attribute value for a JSON scalar (bounded), or None."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if _INT64[0] <= value <= _INT64[1] else _text(str(value))
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return _text(value)
    return None


def _sequence(values: Sequence[Any]) -> Optional[AttrValue]:
    """An attribute value for a list of scalars of one type, or None."""
    items = [_scalar(v) for v in values[:MAX_ITEMS]]
    kinds = {type(v) for v in items}
    if not items or None in items or len(kinds) != 1:
        return None
    return tuple(items)  # type: ignore[return-value]


def _value(value: Any) -> Optional[AttrValue]:
    if isinstance(value, list):
        return _sequence(value)
    return _scalar(value)


def payload_attributes(payload: Mapping[str, Any], prefix: str = "cra.payload.") -> Attributes:
    """The flat scalar fields (and lists of scalars) of a payload as
    attributes, at most `MAX_FIELDS`; objects and mixed lists are left out."""
    out: Attributes = {}
    for key, raw in payload.items():
        if len(out) >= MAX_FIELDS:
            break
        if not isinstance(key, str) or len(key) > MAX_KEY:
            continue
        value = _value(raw)
        if value is not None:
            out[prefix + key] = value
    return out


def _payload(event: TRACEEvent) -> Dict[str, Any]:
    try:
        payload = event.payload
    except Exception:
        return {}
    return payload if isinstance(payload, dict) else {}


def event_attributes(event: TRACEEvent, payload: Optional[Mapping[str, Any]] = None) -> Attributes:
    """The attributes of a TRACE event's span event: its type, ids, sequence,
    hashes and time as recorded, then its payload's scalar fields."""
    attrs: Attributes = {
        "cra.event.type": _text(event.event_type, 128),
        "cra.event.id": event.event_id,
        "cra.event.sequence": event.sequence,
        "cra.event.hash": event.event_hash,
        "cra.event.previous_hash": event.previous_event_hash,
        "cra.event.timestamp": event.timestamp,
        "cra.session_id": event.session_id,
        "cra.trace_id": event.trace_id,
        "cra.span_id": event.span_id,
    }
    if event.parent_span_id is not None:
        attrs["cra.parent_span_id"] = event.parent_span_id
    attrs.update(payload_attributes(_payload(event) if payload is None else payload))
    return attrs


class _Session:
    """One session's span and what is known of it."""

    __slots__ = ("last_ns", "span")

    def __init__(self, span: Span, start_ns: int) -> None:
        self.span, self.last_ns = span, start_ns


class OTelSink:
    """A `cra.Runtime` sink (`TraceSink`) that exports TRACE events as
    OpenTelemetry spans and span events (see the module documentation).

    `tracer_provider`: the provider to get the tracer from (default: the
    global one); `tracer_name`: the tracer's instrumentation name."""

    def __init__(
        self, tracer_provider: Optional[TracerProvider] = None, *, tracer_name: str = "cra"
    ) -> None:
        self._tracer = otel_trace.get_tracer(
            tracer_name, _core.__version__, tracer_provider=tracer_provider
        )
        self._lock = threading.Lock()
        self._open: Dict[str, _Session] = {}
        self._ended: OrderedDict[str, Span] = OrderedDict()
        self._closed = False

    # -- the sink protocol ------------------------------------------------
    def write_batch(self, events: List[TRACEEvent]) -> None:
        """Exports a batch of sealed events, in order; never raises."""
        with self._lock:
            if self._closed:
                return
            ending: Dict[str, Tuple[int, Dict[str, Any]]] = {}
            for event in events:
                try:
                    self._write(event, ending)
                except Exception:
                    log.warning(
                        "cra: could not export a TRACE event to OpenTelemetry", exc_info=True
                    )
            for session_id, (end_ns, payload) in ending.items():
                self._end_session(session_id, end_ns, payload)

    def close(self) -> None:
        """Ends the spans of the sessions still open, at their last event's
        time and marked `cra.session.unfinished`; later batches are ignored.
        Calling it again does nothing."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for session_id in list(self._open):
                self._end_session(session_id, None, {})

    def open_sessions(self) -> List[str]:
        """The ids of the sessions whose span is open."""
        with self._lock:
            return list(self._open)

    # -- events -----------------------------------------------------------
    def _write(self, event: TRACEEvent, ending: Dict[str, Tuple[int, Dict[str, Any]]]) -> None:
        at = timestamp_ns(event.timestamp)
        ns = at if at is not None else time.time_ns()
        payload = _payload(event)
        attrs = event_attributes(event, payload)
        session = self._session(event, payload, ns)
        if session is None:
            self._late_event(event, attrs, ns)
        else:
            session.last_ns = max(session.last_ns, ns)
            session.span.add_event(_text(event.event_type, 128), attrs, timestamp=ns)
        if event.event_type in OUTCOMES and "approval_id" not in payload:
            self._execution(event, payload, ns)
        if event.event_type == "session.ended":
            ending[event.session_id] = (ns, payload)

    def _session(self, event: TRACEEvent, payload: Dict[str, Any], ns: int) -> Optional[_Session]:
        """The session's open span; opened at its first event; None once ended."""
        sid = event.session_id
        session = self._open.get(sid)
        if session is not None or sid in self._ended:
            return session
        attrs: Attributes = {"cra.session_id": sid, "cra.trace_id": event.trace_id}
        if event.event_type == "session.started":
            attrs.update(payload_attributes(payload, "cra."))
        links = self._parent_link(payload.get("parent_session_id"))
        span = self._tracer.start_span(
            SESSION_SPAN, kind=SpanKind.INTERNAL, attributes=attrs, links=links, start_time=ns
        )
        session = self._open[sid] = _Session(span, ns)
        return session

    def _parent_link(self, parent_id: Any) -> List[Link]:
        """A link to the parent session's span, when it is known."""
        if not isinstance(parent_id, str):
            return []
        known = self._open.get(parent_id)
        span = known.span if known is not None else self._ended.get(parent_id)
        if span is None:
            return []
        return [Link(span.get_span_context(), {"cra.link": "parent_session"})]

    def _session_context(self, session_id: str) -> Any:
        known = self._open.get(session_id)
        span = known.span if known is not None else self._ended.get(session_id)
        return otel_trace.set_span_in_context(span) if span is not None else None

    def _late_event(self, event: TRACEEvent, attrs: Attributes, ns: int) -> None:
        """An event after its session's span ended: a zero-length child span."""
        span = self._tracer.start_span(
            LATE_EVENT_SPAN,
            context=self._session_context(event.session_id),
            attributes=attrs,
            start_time=ns,
        )
        span.end(end_time=ns)

    def _execution(self, event: TRACEEvent, payload: Dict[str, Any], ns: int) -> None:
        """A child span of the session for an execution's outcome."""
        action_id = payload.get("action_id")
        name = EXECUTION_SPAN + (f" {_text(action_id, 128)}" if isinstance(action_id, str) else "")
        attrs: Attributes = {
            "cra.outcome": OUTCOMES[event.event_type],
            "cra.session_id": event.session_id,
            "cra.span_id": event.span_id,
            "cra.event.sequence": event.sequence,
            "cra.event.hash": event.event_hash,
        }
        attrs.update(payload_attributes(payload, "cra."))
        duration = _duration_ns(payload.get("duration_ms"))
        span = self._tracer.start_span(
            name,
            context=self._session_context(event.session_id),
            kind=SpanKind.INTERNAL,
            attributes=attrs,
            start_time=ns - duration,
        )
        if event.event_type == "action.failed":
            code = payload.get("error_code")
            span.set_status(Status(StatusCode.ERROR, code if isinstance(code, str) else None))
        span.end(end_time=ns)

    def _end_session(self, session_id: str, end_ns: Optional[int], payload: Dict[str, Any]) -> None:
        session = self._open.pop(session_id, None)
        if session is None:
            return
        span = session.span
        try:
            if end_ns is None:
                span.set_attribute("cra.session.unfinished", True)
            else:
                span.set_attributes(payload_attributes(payload, "cra.session."))
            end = session.last_ns if end_ns is None else max(end_ns, session.last_ns)
            span.end(end_time=end)
        finally:
            self._ended[session_id] = span
            while len(self._ended) > ENDED_MEMORY:
                self._ended.popitem(last=False)


def _duration_ns(value: Any) -> int:
    """`duration_ms` (a number ≥ 0) in nanoseconds; 0 for anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0
    if not math.isfinite(value) or value <= 0 or value > 10**12:
        return 0
    return int(value * 1_000_000)
