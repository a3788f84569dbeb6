"""API keys: `X-API-Key: <key>` or `Authorization: Bearer <key>`.

Without configured keys every caller is anonymous (`None`) and sees
everything. With keys, each request must carry one; the caller is then the
key's id, and sessions, their traces and their approvals are visible only
to the key that created the session.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Dict, Iterable, Mapping, Optional

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from ..errors import AuthenticationError

__all__ = ["Caller", "KeyRing", "caller", "key_id"]

_API_KEY = Security(APIKeyHeader(name="X-API-Key", auto_error=False))
_BEARER = Security(HTTPBearer(auto_error=False))


def key_id(key: str) -> str:
    """A stable name for a key that does not reveal it."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:24]


class KeyRing:
    """The configured keys, by their digests."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._ids: Dict[str, str] = {}
        for k in keys:
            digest = hashlib.sha256(k.encode("utf-8")).hexdigest()
            self._ids[digest] = key_id(k)

    @property
    def enabled(self) -> bool:
        return bool(self._ids)

    def identify(self, key: Optional[str]) -> Optional[str]:
        """The caller's key id; None when no keys are configured; raises 401."""
        if not self._ids:
            return None
        if not key:
            raise AuthenticationError(
                "an API key is required (X-API-Key header or Authorization: Bearer)",
                code="API_KEY_REQUIRED",
            )
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        for known, kid in self._ids.items():
            if hmac.compare_digest(known, digest):
                return kid
        raise AuthenticationError("the API key is not valid", code="API_KEY_INVALID")

    def identify_headers(self, headers: Mapping[str, str]) -> Optional[str]:
        """Like `identify`, reading the key from request headers (WebSocket)."""
        key = headers.get("x-api-key")
        if not key:
            scheme, _, token = headers.get("authorization", "").partition(" ")
            key = token.strip() if scheme.lower() == "bearer" else None
        return self.identify(key)


async def caller(
    request: Request,
    api_key: Optional[str] = _API_KEY,
    bearer: Optional[HTTPAuthorizationCredentials] = _BEARER,
) -> Optional[str]:
    """FastAPI dependency: the calling key's id (None without keys). Async so
    that FastAPI runs it on the event loop, not in its thread pool."""
    ring: KeyRing = request.app.state.cra.keys
    if not ring.enabled:
        return None
    return ring.identify(api_key or (bearer.credentials if bearer else None))


#: The caller's key id (None without keys), as a route parameter's default;
#: it also declares the security schemes in the OpenAPI description.
Caller = Depends(caller)
