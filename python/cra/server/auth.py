"""API keys and roles: `X-API-Key: <key>` or `Authorization: Bearer <key>`.

Without configured keys every caller is `ANONYMOUS`, which has every role
and sees everything. With keys, each request must carry one; the caller is
then that key's `Principal`: its name, its role and its key id. Roles:

- `agent`: sessions, resolve, validate, execute; only its own sessions,
  their traces and their waiting approvals;
- `approver`: lists and decides the approvals of any session, reads any
  session and its trace;
- `admin`: everything, atlas management included.

Every role reads atlases. A refusal by role is 403 `ROLE_FORBIDDEN`, decided
before anything else of the request is looked at. Another key's session is
still 404 for an agent (`ServerState.require_session`), as for an id nobody
created.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from ..errors import AuthenticationError, AuthorizationError
from .keys import ApiKey, digest

__all__ = [
    "ADMIN",
    "ANONYMOUS",
    "ANY",
    "APPROVER",
    "AGENT",
    "AdminCaller",
    "AgentCaller",
    "ApproverCaller",
    "Caller",
    "KeyRing",
    "Principal",
    "caller",
    "needs",
    "require_role",
]

_API_KEY = Security(APIKeyHeader(name="X-API-Key", auto_error=False))
_BEARER = Security(HTTPBearer(auto_error=False))

#: Roles allowed to do what an agent does (sessions, CARP).
AGENT: Tuple[str, ...] = ("agent", "admin")
#: Roles allowed to decide approvals.
APPROVER: Tuple[str, ...] = ("approver", "admin")
#: Roles allowed to load, replace and unload atlases.
ADMIN: Tuple[str, ...] = ("admin",)
#: Every role (reads whose scope depends on the role).
ANY: Tuple[str, ...] = ("agent", "approver", "admin")


@dataclass(frozen=True)
class Principal:
    """Who is calling: a configured key, or `ANONYMOUS` when there are none."""

    name: str
    role: str
    #: The id that owns sessions (None: anonymous, no keys configured).
    key_id: Optional[str]

    @property
    def anonymous(self) -> bool:
        return self.key_id is None

    @property
    def sees_all(self) -> bool:
        """True if every session is visible to this caller (anonymous, approver, admin)."""
        return self.key_id is None or self.role in ("approver", "admin")


#: The caller when no keys are configured: every role, every session.
ANONYMOUS = Principal("anonymous", "admin", None)


def require_role(principal: Principal, roles: Tuple[str, ...]) -> Principal:
    """The principal, or 403 `ROLE_FORBIDDEN` naming the roles needed."""
    if principal.role not in roles:
        need = " or ".join(roles)
        raise AuthorizationError(
            f"this operation needs a key with the role {need}; this key's role is {principal.role}",
            code="ROLE_FORBIDDEN",
            details={"role": principal.role, "required_roles": list(roles)},
        )
    return principal


class KeyRing:
    """The configured keys, by their SHA-256 digests."""

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self._by_digest: Dict[str, Principal] = {
            k.sha256: Principal(k.name, k.role, k.key_id) for k in keys
        }

    @property
    def enabled(self) -> bool:
        return bool(self._by_digest)

    def identify(self, key: Optional[str]) -> Principal:
        """The caller of a key; `ANONYMOUS` when no keys are configured; raises 401."""
        if not self._by_digest:
            return ANONYMOUS
        if not key:
            raise AuthenticationError(
                "an API key is required (X-API-Key header or Authorization: Bearer)",
                code="API_KEY_REQUIRED",
            )
        wanted = digest(key)
        found: Optional[Principal] = None
        for known, principal in self._by_digest.items():
            if hmac.compare_digest(known, wanted):
                found = principal
        if found is None:
            raise AuthenticationError("the API key is not valid", code="API_KEY_INVALID")
        return found

    def identify_headers(self, headers: Mapping[str, str]) -> Principal:
        """Like `identify`, reading the key from request headers (WebSocket, fast path)."""
        key = headers.get("x-api-key")
        if not key:
            scheme, _, token = headers.get("authorization", "").partition(" ")
            key = token.strip() if scheme.lower() == "bearer" else None
        return self.identify(key)


async def caller(
    request: Request,
    api_key: Optional[str] = _API_KEY,
    bearer: Optional[HTTPAuthorizationCredentials] = _BEARER,
) -> Principal:
    """FastAPI dependency: the caller (`ANONYMOUS` without keys). Async so
    that FastAPI runs it on the event loop, not in its thread pool."""
    ring: KeyRing = request.app.state.cra.keys
    if not ring.enabled:
        return ANONYMOUS
    return ring.identify(api_key or (bearer.credentials if bearer else None))


_IDENTIFIED = Depends(caller)


def needs(roles: Tuple[str, ...]) -> Any:
    """A route parameter's default: the caller, refused with 403 unless its
    role is one of `roles`. It also declares the security schemes in the
    OpenAPI description."""

    async def allowed(principal: Principal = _IDENTIFIED) -> Principal:
        return require_role(principal, roles)

    return Depends(allowed)


#: The caller, whatever its role (reads that every role may do).
Caller = needs(ANY)
#: The caller, if its role may do what agents do (sessions, CARP).
AgentCaller = needs(AGENT)
#: The caller, if its role may decide approvals.
ApproverCaller = needs(APPROVER)
#: The caller, if its role may change atlases.
AdminCaller = needs(ADMIN)
