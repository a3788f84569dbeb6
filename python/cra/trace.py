"""TRACE/1.0 values: sealed events and chain verification results.

Thin, immutable views over the Rust core's objects; nested values are
converted to Python only when asked for.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from . import _core

__all__ = ["TRACEEvent", "ChainVerification", "FileVerification", "verify_chain", "verify_jsonl"]


class TRACEEvent:
    """One sealed TRACE/1.0 event (numbered, hashed and chained)."""

    __slots__ = ("_e",)
    _e: _core.Event

    def __init__(self, core_event: _core.Event) -> None:
        object.__setattr__(self, "_e", core_event)

    @property
    def trace_version(self) -> str:
        return "1.0"

    @property
    def event_id(self) -> str:
        return self._e.event_id

    @property
    def trace_id(self) -> str:
        return self._e.trace_id

    @property
    def span_id(self) -> str:
        return self._e.span_id

    @property
    def parent_span_id(self) -> Optional[str]:
        return self._e.parent_span_id

    @property
    def session_id(self) -> str:
        return self._e.session_id

    @property
    def sequence(self) -> int:
        return self._e.sequence

    @property
    def timestamp(self) -> str:
        return self._e.timestamp

    @property
    def event_type(self) -> str:
        return self._e.event_type

    @property
    def payload(self) -> Dict[str, Any]:
        """The payload as Python values (a fresh copy on each access)."""
        out: Dict[str, Any] = json.loads(self._e.payload_json)
        return out

    @property
    def canonical_payload(self) -> str:
        """The payload's canonical JSON, exactly as hashed."""
        return self._e.payload_json

    @property
    def event_hash(self) -> str:
        return self._e.event_hash

    @property
    def previous_event_hash(self) -> str:
        return self._e.previous_event_hash

    def to_json(self) -> str:
        """The event as one line of JSON (its `.trace.jsonl` form)."""
        return self._e.to_json()

    def to_dict(self) -> Dict[str, Any]:
        """The event as the protocol's JSON object."""
        out: Dict[str, Any] = json.loads(self._e.to_json())
        return out

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("TRACEEvent is immutable")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TRACEEvent) and other.to_json() == self.to_json()

    def __hash__(self) -> int:
        return hash(self.event_hash)

    def __repr__(self) -> str:
        return (
            f"TRACEEvent(#{self.sequence} {self.event_type} session={self.session_id[:8]}… "
            f"hash={self.event_hash[:12]}…)"
        )


@dataclass(frozen=True)
class ChainVerification:
    """The result of verifying one session's chain."""

    valid: bool
    error: Optional[str]
    index: Optional[int]
    event_count: int
    algorithm: Optional[str]
    message: Optional[str] = None
    session_id: Optional[str] = None
    line: Optional[int] = None
    #: The sequence of the anchor the chain was verified from (its older
    #: events removed by retention); None when verified from genesis.
    anchored_at: Optional[int] = None
    #: A stored chain cut by retention (store verification only): where the
    #: kept chain starts (`sequence`, `anchor_hash`), how many events before
    #: it were removed (`removed_events`), and the recorded cut it matches
    #: (`cut_at`, `recorded_by`; None when none matches). None otherwise.
    retention_cut: Optional[Dict[str, Any]] = None
    #: A fault of the session's row against its stored events (store
    #: verification: `truncated`, `row_mismatch`, `count_mismatch`,
    #: `unrecorded_cut`): what the row or the recorded cuts promised, and
    #: what is stored.
    expected: Optional[Dict[str, Any]] = None
    found: Optional[Dict[str, Any]] = None
    #: With a public key (`Runtime.verify(..., public_key=)`): the chain's
    #: signed checkpoints as checked (see `FileVerification.signatures`).
    signatures: Optional[Dict[str, Any]] = None

    @classmethod
    def _from_core(cls, r: _core.ChainReport) -> ChainVerification:
        return cls(
            valid=r.valid,
            error=r.error,
            index=r.index,
            event_count=r.event_count,
            algorithm=r.algorithm,
            message=r.message,
            session_id=r.session_id,
            line=r.line,
            anchored_at=r.anchored_at,
        )

    def __bool__(self) -> bool:
        return self.valid


@dataclass(frozen=True)
class FileVerification(Mapping[str, ChainVerification]):
    """Verification of a `.trace.jsonl` file: one result per session, plus
    what is wrong with the file itself (a torn last line, lines that are not
    events), and the torn lines a crash left that reopening the file set
    aside. Indexable by session id."""

    sessions: Dict[str, ChainVerification]
    torn_tail: Optional[Tuple[int, int, int]]
    bad_lines: List[Tuple[int, str]]
    bad_line_count: int
    lines: int
    event_count: int
    #: The anchor file the chains were verified with (`FILE.anchor.json`
    #: beside the file, or the one given), if any.
    anchor_file: Optional[str] = None
    #: Anchors naming a session the file does not contain.
    anchor_faults: List[str] = field(default_factory=list)
    #: `(line, offset, bytes, side_file)` of each torn line a crash left that
    #: reopening the file copied to `side_file` (`FILE.torn-OFFSET[.N]`) and
    #: ended with a newline: not an event and not a bad line, so it leaves the
    #: file valid when every chain verifies without it (the first 100).
    torn_lines: List[Tuple[int, int, int, str]] = field(default_factory=list)
    torn_line_count: int = 0
    #: The id of the public key the signed checkpoints were checked with;
    #: None when no key was given: completeness was not checked.
    key_id: Optional[str] = None
    #: With a key, per session id: its checkpoints as checked
    #: (`checkpoints`, `valid_checkpoints`, `signed_events`, `events`,
    #: `unsigned_tail`, `ended`, `closed`, `coverage`, and `faults`, each
    #: with `kind` signature_invalid | checkpoint_mismatch | incomplete,
    #: `sequence` and `message`).
    signatures: Optional[Dict[str, Dict[str, Any]]] = None

    @property
    def valid(self) -> bool:
        return (
            self.torn_tail is None
            and self.bad_line_count == 0
            and not self.anchor_faults
            and all(v.valid for v in self.sessions.values())
            and all(not s["faults"] for s in (self.signatures or {}).values())
        )

    @property
    def completeness_checked(self) -> bool:
        """True when signatures were checked (a public key was given)."""
        return self.signatures is not None

    def __getitem__(self, session_id: str) -> ChainVerification:
        return self.sessions[session_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self.sessions)

    def __len__(self) -> int:
        return len(self.sessions)

    def __bool__(self) -> bool:
        return self.valid


def verify_jsonl(
    path: Union[str, os.PathLike[str]],
    progress: Optional[Callable[[int], None]] = None,
    anchor: Optional[Union[str, os.PathLike[str]]] = None,
    use_sidecar: bool = True,
    public_key: Optional[Union[str, os.PathLike[str]]] = None,
    checkpoints: Sequence[Union[str, os.PathLike[str]]] = (),
) -> FileVerification:
    """Verifies every session chain in a `.trace.jsonl` file, streaming.

    With `public_key` (an SPKI PEM file, `cra keys generate`), the signed
    checkpoints of every chain are checked too, and the result says how
    much of each chain the signatures cover (`signatures`); without it,
    `completeness_checked` is False: a chain cut at its end, or rewritten
    whole, still verifies. `checkpoints` are files of checkpoints kept
    elsewhere (`GET /v1/traces/{id}/checkpoint`, saved by a witness): a
    chain holding fewer events than one of them covers is `truncated`, one
    stating another root for the same events a `checkpoint_mismatch`.

    A chain whose older events were removed (an export of a session trimmed
    by retention) is verified from its anchor: the anchor file `anchor`, or
    else `FILE.anchor.json` beside the file when there is one (and
    `use_sidecar`). Such a chain reports `anchored_at`, the sequence it was
    verified from."""
    r = _core.verify_jsonl(
        os.fspath(path),
        progress,
        None if anchor is None else os.fspath(anchor),
        use_sidecar,
        None if public_key is None else os.fspath(public_key),
        [os.fspath(c) for c in checkpoints],
    )
    sessions = {}
    for s in r.sessions:
        v = ChainVerification._from_core(s)
        sessions[v.session_id or ""] = v
    signed = r.signatures
    signatures = None if signed is None else dict(zip(sessions, signed))
    return FileVerification(
        sessions=sessions,
        torn_tail=r.torn_tail,
        bad_lines=r.bad_lines,
        bad_line_count=r.bad_line_count,
        lines=r.lines,
        event_count=r.event_count,
        anchor_file=None if r.anchor_file is None else os.fspath(r.anchor_file),
        anchor_faults=r.anchor_faults,
        torn_lines=r.torn_lines,
        torn_line_count=r.torn_line_count,
        key_id=r.key_id,
        signatures=signatures,
    )


def verify_chain(events: Sequence[Union[Mapping[str, Any], TRACEEvent]]) -> ChainVerification:
    """Verifies a list of events (dicts as exported, or TRACEEvent) as one
    chain, in the order given."""
    texts = [e.to_json() if isinstance(e, TRACEEvent) else json.dumps(e) for e in events]
    return ChainVerification._from_core(_core.verify_chain_json(texts))
