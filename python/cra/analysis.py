"""Audit tools over traces: replay, diff and reconstruct.

Replay re-runs recorded resolves against atlases, diff compares two traces,
and reconstruct rebuilds a session's state from its trace alone.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)

from . import _core
from .errors import IntegrityError, NotFoundError
from .runtime import Runtime
from .trace import TRACEEvent

__all__ = [
    "Difference",
    "ReplayReport",
    "ReplayedRequest",
    "SessionState",
    "TraceDiff",
    "diff",
    "read_trace",
    "reconstruct",
    "replay",
]

Trace = Union[str, "os.PathLike[str]", Sequence[Union[TRACEEvent, Mapping[str, Any], str]]]


def _source(trace: Trace) -> Union[str, List[str]]:
    """What the core reads: a file path (streamed there, line by line) or
    the events as JSON texts."""
    if isinstance(trace, (str, os.PathLike)):
        return os.fspath(trace)
    return read_trace(trace)


#: What the core's trace reader skips as a blank line (ASCII whitespace only).
_BLANK = b" \t\n\r\x0c"


def _side_files(path: str) -> Dict[int, List[str]]:
    """The side files beside a trace file that may hold a torn line set aside
    when the file was reopened, by the offset where that line starts: for
    each, `FILE.torn-OFFSET`, then `FILE.torn-OFFSET.1`, `.2`, … up to the
    first name missing (the names the file sink picks, `rust/trace/jsonl.rs`)."""
    directory, name = os.path.split(path)
    try:
        names = set(os.listdir(directory or "."))
    except OSError:
        return {}
    prefix = f"{name}.torn-"
    sides: Dict[int, List[str]] = {}
    for entry in names:
        number = entry[len(prefix) :]
        if not entry.startswith(prefix) or _OFFSET.fullmatch(number) is None:
            continue
        offset, n = int(number), 0
        found: List[str] = []
        while entry in names:
            found.append(os.path.join(directory, entry))
            n += 1
            entry = f"{prefix}{offset}.{n}"
        sides[offset] = found
    return sides


_OFFSET = re.compile(r"0|[1-9][0-9]*")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"not JSON: {name}")


def _is_json(raw: bytes) -> bool:
    """Whether `raw` is one JSON value, as the core reads it (UTF-8, no NaN)."""
    try:
        json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return False
    return True


def _copy_of(raw: bytes, sides: Sequence[str]) -> Optional[str]:
    """The side file holding exactly `raw` (a line without its newline) when
    `raw` is not JSON: a torn line set aside, as the core's readers and
    verifier tell it (`rust/trace/verify_file.rs`); None otherwise."""
    if not raw or _is_json(raw):
        return None
    for side in sides:
        try:
            if os.path.isfile(side) and os.path.getsize(side) == len(raw):
                with open(side, "rb") as f:
                    if f.read() == raw:
                        return side
        except OSError:
            return None
    return None


def _event_lines(
    path: str, on_torn: Optional[Callable[[int, str], None]] = None
) -> Iterator[Tuple[int, bytes]]:
    """The lines of a trace file that are not blank, with their numbers
    (from 1), read as `diff` and `replay` read them: a file whose last line
    is torn is refused before any line is read, and a torn line that
    reopening the file set aside is skipped (`on_torn(number, side_file)`
    told of it)."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise NotFoundError(f"{path}: no such file", code="FILE_NOT_FOUND", path=path) from None
    with f:
        size = f.seek(0, os.SEEK_END)
        if size:
            f.seek(size - 1)
            if f.read(1) != b"\n":
                raise IntegrityError(
                    f"{path} ends in a torn line; run `cra trace verify` on it first",
                    code="TRACE_TORN",
                    path=path,
                )
            f.seek(0)
        sides = _side_files(path)
        offset = 0
        for number, line in enumerate(f, 1):
            start, offset = offset, offset + len(line)
            if not line.strip(_BLANK):
                continue
            if start in sides and line.endswith(b"\n"):
                side = _copy_of(line[:-1], sides[start])
                if side is not None:
                    if on_torn is not None:
                        on_torn(number, side)
                    continue
            yield number, line


def read_trace(trace: Trace) -> List[str]:
    """A trace as JSON texts, one per event: from a `.trace.jsonl` path, or
    a list of `TRACEEvent`, dicts or JSON strings. A torn last line is an
    error; a torn line that reopening the file set aside (its side file
    `FILE.torn-OFFSET` holds exactly its bytes) is skipped, as `cra trace
    diff` and `replay` and the core's readers skip it."""
    if isinstance(trace, (str, os.PathLike)):
        path = os.fspath(trace)
        try:
            # Every line read ends in its newline: a torn last line is refused.
            return [line[:-1].decode("utf-8") for _, line in _event_lines(path)]
        except (OSError, UnicodeDecodeError) as e:
            raise IntegrityError(
                f"{path}: cannot read the trace: {e}", code="TRACE_INVALID", path=path
            ) from None
    out: List[str] = []
    for item in trace:
        if isinstance(item, TRACEEvent):
            out.append(item.to_json())
        elif isinstance(item, str):
            out.append(item)
        else:
            out.append(json.dumps(item))
    return out


@dataclass(frozen=True)
class Difference:
    path: str
    type: str
    significance: str
    before: Any = None
    after: Any = None


@dataclass(frozen=True)
class TraceDiff:
    """`identical`, `semantically_equivalent` (only durations and timings
    differ) or `divergent` (a decision, action, policy or count differs)."""

    compatibility: str
    differences: List[Difference] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "compatibility": self.compatibility,
            "differences": [
                {"path": d.path, "type": d.type, "significance": d.significance}
                for d in self.differences
            ],
        }


def diff(trace_a: Trace, trace_b: Trace) -> TraceDiff:
    """Compares two traces event by event, ignoring ids, timestamps and hashes."""
    doc = json.loads(_core.diff_traces(_source(trace_a), _source(trace_b)))
    return TraceDiff(doc["compatibility"], [Difference(**d) for d in doc["differences"]])


@dataclass(frozen=True)
class ReplayedRequest:
    session_id: str
    request_id: str
    sequence: int
    matches: bool
    mismatches: List[Dict[str, Any]]
    error: Optional[str] = None


@dataclass(frozen=True)
class ReplayReport:
    """Per recorded resolve: whether the decision type, the allowed and
    denied counts, every `policy.evaluated` outcome and the context blocks
    (count, and each block's id and token count in order) came out the same.

    `requests` lists every resolve replayed, or only those that did not
    match when the replay was asked not to keep matching ones;
    `request_count` is how many were replayed either way. `stats` says what
    the replay engine read and held (`events`, `peak_events_held`,
    `peak_open_executes`); it is not part of the result (not compared)."""

    identical: bool
    executions_counted: int
    requests: List[ReplayedRequest]
    request_count: Optional[int] = None
    stats: Dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    @property
    def mismatched(self) -> int:
        return sum(not r.matches for r in self.requests)

    @property
    def matched(self) -> int:
        total = len(self.requests) if self.request_count is None else self.request_count
        return total - self.mismatched


def replay(
    trace: Trace,
    atlases: Iterable[Any],
    *,
    keep_matching: bool = True,
    progress: Optional[Callable[[int], None]] = None,
) -> ReplayReport:
    """Re-runs every recorded resolve against `atlases` (paths or dicts) at
    the recorded clock readings, with limits rebuilt from recorded executions.

    A `.trace.jsonl` path is streamed by the core, one event at a time, so
    memory does not grow with the trace; with `keep_matching=False` only the
    requests that did not match are kept in the report. `progress(bytes_read)`
    is called now and then while a file is read."""
    with Runtime(atlases=list(atlases), clock_skew_seconds=None) as rt:
        source = _source(trace)
        if isinstance(source, str):
            text = rt._core.replay_file(source, keep_matching, progress)
        else:
            text = rt._core.replay_trace(source)
        doc = json.loads(text)
    requests = [ReplayedRequest(**r) for r in doc["requests"]]
    if not keep_matching:
        requests = [r for r in requests if not r.matches]
    return ReplayReport(
        doc["identical"], doc["executions_counted"], requests, doc["request_count"], doc["stats"]
    )


@dataclass(frozen=True)
class SessionState:
    """A session as its trace tells it: the session, resolutions, executions,
    approvals, and the executions that count toward limits, per action."""

    session: Dict[str, Any]
    event_count: int
    resolutions: List[Dict[str, Any]]
    executions: List[Dict[str, Any]]
    approvals: List[Dict[str, Any]]
    execution_counts: Dict[str, Dict[str, int]]


def reconstruct(trace: Trace) -> Union[SessionState, List[SessionState]]:
    """The state of the trace's session (a list when it holds several)."""
    states = [SessionState(**s) for s in json.loads(_core.reconstruct_trace(_source(trace)))]
    return states[0] if len(states) == 1 else states
