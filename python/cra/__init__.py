"""cra: Context Registry for Agents.

Governed actions for AI agents (CARP) and a tamper-evident, hash-chained
audit trail of everything they do (TRACE), with the hot path in Rust.
"""

from . import errors, fast
from ._core import __version__, canonical_json
from .analysis import diff, reconstruct, replay
from .carp import (
    AllowedAction,
    AtlasInfo,
    CARPRequest,
    CARPResolution,
    Constraint,
    ContextBlock,
    Decision,
    DeniedAction,
)
from .errors import CraError
from .runtime import Runtime, TraceSink
from .trace import ChainVerification, FileVerification, TRACEEvent, verify_chain, verify_jsonl

__all__ = [
    "__version__",
    "AllowedAction",
    "AtlasInfo",
    "CARPRequest",
    "CARPResolution",
    "Constraint",
    "ContextBlock",
    "Decision",
    "DeniedAction",
    "fast",
    "ChainVerification",
    "CraError",
    "FileVerification",
    "Runtime",
    "TRACEEvent",
    "TraceSink",
    "canonical_json",
    "diff",
    "reconstruct",
    "replay",
    "errors",
    "verify_chain",
    "verify_jsonl",
]
