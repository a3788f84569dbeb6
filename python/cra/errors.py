"""Exceptions of cra: one class per protocol error category.

Each carries the protocol's code, category, HTTP status, JSON path and
recoverable flag."""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple, Type

__all__ = [
    "CraError",
    "ValidationError",
    "AuthenticationError",
    "AuthorizationError",
    "NotFoundError",
    "ConflictError",
    "ExpiredError",
    "IntegrityError",
    "ApprovalRequiredError",
    "RateLimitedError",
    "InternalError",
    "UpstreamError",
    "SinkError",
    "UnavailableError",
]


class CraError(Exception):
    """Base of every cra error."""

    category: str = "internal"
    http_status: int = 500

    def __init__(
        self,
        message: str,
        *,
        code: str = "INTERNAL_ERROR",
        path: Optional[str] = None,
        recoverable: bool = False,
        details: Optional[Dict[str, Any]] = None,
        request_id: Optional[str] = None,
    ) -> None:
        super().__init__(f"{message} (at {path})" if path else message)
        self.message = message
        self.code = code
        self.path = path
        self.recoverable = recoverable
        self.details: Dict[str, Any] = dict(details or {})
        if path is not None:
            self.details.setdefault("path", path)
        self.request_id = request_id

    @property
    def errors(self) -> list[dict[str, str]]:
        """Every fault found, each with its JSON pointer `path` and `message`."""
        found = self.details.get("errors")
        if found:
            return list(found)
        return [{"path": self.path or "", "message": self.message}]

    def to_dict(self) -> Dict[str, Any]:
        """The protocol's error body: `{"error": {...}}`."""
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "category": self.category,
                "recoverable": self.recoverable,
                "details": self.details,
                "request_id": self.request_id,
            }
        }


class ValidationError(CraError, ValueError):
    category, http_status = "validation", 400


class AuthenticationError(CraError):
    category, http_status = "authentication", 401


class AuthorizationError(CraError):
    category, http_status = "authorization", 403


class NotFoundError(CraError, LookupError):
    category, http_status = "not_found", 404


class ConflictError(CraError):
    category, http_status = "conflict", 409


class ExpiredError(CraError):
    category, http_status = "expired", 410


class IntegrityError(CraError):
    category, http_status = "integrity", 422


class ApprovalRequiredError(CraError):
    category, http_status = "approval_required", 423


class RateLimitedError(CraError):
    category, http_status = "rate_limited", 429


class InternalError(CraError):
    category, http_status = "internal", 500


class UpstreamError(CraError):
    category, http_status = "upstream", 502


class UnavailableError(CraError):
    """The trace cannot take or keep events now (its store is failing or its
    queue is full): nothing was acknowledged. Retry after a while."""

    category, http_status = "unavailable", 503


class SinkError(InternalError):
    """A trace sink failed; its events are kept and retried."""


_BY_CATEGORY: Dict[str, Type[CraError]] = {
    cls.category: cls
    for cls in (
        ValidationError,
        AuthenticationError,
        AuthorizationError,
        NotFoundError,
        ConflictError,
        ExpiredError,
        IntegrityError,
        ApprovalRequiredError,
        RateLimitedError,
        InternalError,
        UpstreamError,
        UnavailableError,
    )
}
_BY_CODE: Dict[str, Type[CraError]] = {"TRACE_SINK_FAILED": SinkError}


def _from_core(
    code: str,
    category: str,
    message: str,
    path: Optional[str],
    recoverable: bool,
    faults: Sequence[Tuple[str, str]] = (),
) -> CraError:
    """Called by the Rust core to build the exception for one of its errors."""
    cls = _BY_CODE.get(code) or _BY_CATEGORY.get(category, CraError)
    details: Dict[str, Any] = {}
    if faults:
        details["errors"] = [{"path": p, "message": m} for p, m in faults]
    return cls(message, code=code, path=path, recoverable=recoverable, details=details)
