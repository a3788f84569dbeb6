"""Ids at the server's boundary: every session, resolution and approval id is
read as a UUID and used in one canonical form.

The runtime reads a UUID in four spellings (`Uuid::try_parse`: 32 hex
digits; the hyphenated 8-4-4-4-12 form; that form in braces; that form after
`urn:uuid:`, hex digits in either case) and keys everything by the
lower-case hyphenated form. The server accepts the same spellings, and only
those, and turns each into that form before any ownership check, lookup or
call of the runtime, so that one session can never have two names.
Anything else is a 400 naming where the id was.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Optional

from ..errors import ValidationError
from .errors import invalid

__all__ = ["canonical", "canonical_id", "canonical_request"]

_H = "[0-9a-fA-F]"
_HYPHENATED = f"{_H}{{8}}-{_H}{{4}}-{_H}{{4}}-{_H}{{4}}-{_H}{{12}}"
_UUID = re.compile(
    rf"{_H}{{32}}|{_HYPHENATED}|\{{{_HYPHENATED}\}}|(?i:urn:uuid:){_HYPHENATED}", re.ASCII
)


def canonical(text: str) -> Optional[str]:
    """The lower-case hyphenated form of a UUID in one of the runtime's
    spellings, or None if `text` is not one."""
    if not _UUID.fullmatch(text):
        return None
    if len(text) == 38:  # {hyphenated}
        text = text[1:-1]
    elif len(text) == 45:  # urn:uuid:hyphenated
        text = text[9:]
    h = text.replace("-", "").lower()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def canonical_id(text: str, path: str) -> str:
    """`canonical(text)`, or a 400 `INVALID_REQUEST` at `path`."""
    found = canonical(text)
    if found is None:
        raise invalid(f"{_shown(text)} is not a UUID", path)
    return found


def _shown(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:60] + "...")


#: The ids of a CARP request that name what a caller may reach.
_REQUEST_IDS = (
    ("requester", "session_id"),
    ("requester", "parent_session_id"),
    ("execution", "resolution_id"),
)


def canonical_request(body: Dict[str, Any]) -> Optional[ValidationError]:
    """Rewrites a CARP request's session, parent session and resolution ids
    in place to their canonical form. A string that is not a UUID is not
    passed on: the answer is a 400 (`INVALID_REQUEST`, every such id in
    `details.errors`), returned rather than raised so validate can answer
    `valid: false`. Values of other types are left for the runtime's schema
    check, which refuses them."""
    faults = []
    for part, name in _REQUEST_IDS:
        obj = body.get(part)
        value = obj.get(name) if isinstance(obj, dict) else None
        if not isinstance(value, str):
            continue
        found = canonical(value)
        if found is None:
            faults.append({"path": f"/{part}/{name}", "message": f"{_shown(value)} is not a UUID"})
        else:
            assert isinstance(obj, dict)
            obj[name] = found
    if not faults:
        return None
    first = faults[0]
    err = invalid(first["message"], first["path"])
    err.details["errors"] = faults
    return err
