"""API keys of `cra serve`: who holds each key (a name) and what it may do (a role).

Keys come from two sources, which may be combined:

- `CRA_API_KEYS` / `--api-keys`: comma-separated entries `NAME:ROLE:KEY`,
  or a bare `KEY` (no colon), which is an `agent` key named after its first
  8 characters;
- `CRA_API_KEYS_FILE` / `--api-keys-file`: a JSON or TOML file (by its
  extension) of `{name, role, sha256}` entries, `sha256` being the hex
  SHA-256 digest of the key, so that no key is kept in plain text.

Roles: `agent` (sessions, CARP, its own traces), `approver` (decides the
approvals of any session, reads any session), `admin` (everything,
including atlas management). Only the keys' digests are kept. A bad entry
raises `KeySpecError` (a `ValueError`) with one line that names the entry,
never the key. This module imports nothing from FastAPI.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Sequence, Tuple

__all__ = [
    "ROLES",
    "ApiKey",
    "KeySpecError",
    "combine",
    "digest",
    "load_key_file",
    "parse_entries",
]

#: The roles a key may have, from least to most power.
ROLES = ("agent", "approver", "admin")

#: What a name may look like (it is recorded as the approver in traces).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}", re.ASCII)
_WORD = re.compile(r"[A-Za-z][A-Za-z_-]{0,15}", re.ASCII)
_HEX64 = re.compile(r"[0-9a-fA-F]{64}", re.ASCII)
_FIELDS = ("name", "role", "sha256")


class KeySpecError(ValueError):
    """A key entry or key file that cannot be used (one line, no key in it)."""


@dataclass(frozen=True)
class ApiKey:
    """One configured key: its holder's name, its role and its SHA-256 digest."""

    name: str
    role: str
    sha256: str = field(repr=False)

    @property
    def key_id(self) -> str:
        """The id that owns sessions: the first 24 hex digits of the digest
        (ownership follows the key, not its name)."""
        return self.sha256[:24]


#: A key with the words that name its entry in errors.
Labelled = Tuple[str, ApiKey]


def digest(key: str) -> str:
    """The hex SHA-256 digest of a key."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _role(role: str, where: str) -> str:
    if role in ROLES:
        return role
    close = difflib.get_close_matches(role.lower(), ROLES, n=1, cutoff=0.5)
    hint = f' (did you mean "{close[0]}"?)' if close else f" (roles: {', '.join(ROLES)})"
    # Echoed only if it looks like a word: fields given in the wrong order
    # could put a key where the role belongs.
    shown = f' "{role}"' if _WORD.fullmatch(role) else ""
    raise KeySpecError(f"{where}: unknown role{shown}{hint}")


def _name(name: str, where: str) -> str:
    if not name:
        raise KeySpecError(f"{where}: empty name")
    if not _NAME.fullmatch(name):
        raise KeySpecError(
            f"{where}: a name is 1-64 letters, digits and . _ @ + - (starting with a "
            "letter or digit)"
        )
    return name


def parse_entries(entries: Iterable[str]) -> List[Labelled]:
    """The keys of `NAME:ROLE:KEY` (or bare `KEY`) entries, each labelled
    `entry N (...)`; raises KeySpecError for a bad or repeated entry."""
    out: List[Labelled] = []
    for i, entry in enumerate(entries, 1):
        if ":" not in entry:
            if not entry:
                raise KeySpecError(f"entry {i}: empty key")
            out.append((f"entry {i} (a bare key)", ApiKey(entry[:8], "agent", digest(entry))))
            continue
        parts = entry.split(":", 2)
        if len(parts) != 3:
            raise KeySpecError(f"entry {i}: expected NAME:ROLE:KEY, or a bare key without colons")
        name, role, key = (p.strip() for p in parts)
        where = f"entry {i}"
        name = _name(name, where)
        where = f'entry {i} ("{name}")'
        role = _role(role, where)
        if not key:
            raise KeySpecError(f"{where}: empty key")
        out.append((where, ApiKey(name, role, digest(key))))
    return combine(out)


def _toml_loads(text: str) -> Any:
    # tomllib is in the standard library from 3.11; before, the tomli package
    # (the `server` extra installs it there) is the same parser. Both raise
    # a ValueError subclass (TOMLDecodeError).
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib.loads(text)
    import tomli  # type: ignore[import-not-found, unused-ignore]

    return tomli.loads(text)


def _read(path: Path, label: str) -> Any:
    ext = path.suffix.lower()
    if ext not in (".json", ".toml"):
        raise KeySpecError(f"{label}: a key file must end in .json or .toml")
    try:
        raw = path.read_bytes()
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise KeySpecError(f"{label}: cannot read the file ({reason})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise KeySpecError(f"{label}: not UTF-8 text") from None
    if ext == ".json":
        try:
            return json.loads(text, object_pairs_hook=_object)
        except (ValueError, RecursionError) as e:
            raise KeySpecError(f"{label}: not valid JSON ({_line(e)})") from None
    try:
        return _toml_loads(text)
    except ValueError as e:
        raise KeySpecError(f"{label}: not valid TOML ({_line(e)})") from None


def _object(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise KeySpecError(f'field "{k[:40]}" appears twice')
        out[k] = v
    return out


def _line(e: BaseException) -> str:
    """A parser's message on one short line (errors are one line each)."""
    return " ".join(str(e).split())[:120]


def load_key_file(path: str) -> List[Labelled]:
    """The keys of a JSON or TOML key file, each labelled `<file>: keys[i] (...)`.

    The file is `{"keys": [{name, role, sha256}, ...]}` (TOML: `[[keys]]`
    tables); a JSON file may also be the bare list. Unknown fields, missing
    ones, a digest that is not 64 hex digits, a repeated name or digest and
    a file without any key are errors."""
    label = str(path)
    data = _read(Path(path), label)
    if isinstance(data, dict):
        extra = sorted(k for k in data if k != "keys")
        if extra:
            raise KeySpecError(f'{label}: unknown field "{extra[0][:40]}" (allowed: keys)')
        if "keys" not in data:
            raise KeySpecError(f'{label}: "keys" is missing')
        data = data["keys"]
    if not isinstance(data, list):
        raise KeySpecError(f'{label}: "keys" must be a list of {{name, role, sha256}} entries')
    if not data:
        raise KeySpecError(f"{label}: holds no keys")
    out: List[Labelled] = []
    for i, item in enumerate(data):
        where = f"{label}: keys[{i}]"
        out.append(_file_entry(item, where))
    return combine(out)


def _file_entry(item: Any, where: str) -> Labelled:
    if not isinstance(item, dict):
        raise KeySpecError(f"{where}: must be an object with name, role and sha256")
    unknown = sorted(str(k) for k in item if k not in _FIELDS)
    if unknown:
        raise KeySpecError(
            f'{where}: unknown field "{unknown[0][:40]}" (allowed: {", ".join(_FIELDS)})'
        )
    for f in _FIELDS:
        if f not in item:
            raise KeySpecError(f'{where}: "{f}" is missing')
        if not isinstance(item[f], str):
            raise KeySpecError(f'{where}: "{f}" must be a string')
    name = _name(item["name"], where)
    where = f'{where} ("{name}")'
    role = _role(item["role"], where)
    sha = item["sha256"]
    if not _HEX64.fullmatch(sha):
        raise KeySpecError(f"{where}: sha256 must be 64 hex digits (the key's SHA-256 digest)")
    return where, ApiKey(name, role, sha.lower())


def combine(*groups: Sequence[Labelled]) -> List[Labelled]:
    """The keys of every group, in order; raises KeySpecError when two share
    a key or a name (naming both entries)."""
    by_digest: Dict[str, str] = {}
    by_name: Dict[str, str] = {}
    out: List[Labelled] = []
    for group in groups:
        for where, key in group:
            if key.sha256 in by_digest:
                raise KeySpecError(f"{where} has the same key as {by_digest[key.sha256]}")
            if key.name in by_name:
                what = (
                    "the same first 8 characters, so the same name, as"
                    if "bare key" in where
                    else "the same name as"
                )
                raise KeySpecError(f"{where} has {what} {by_name[key.name]}")
            by_digest[key.sha256] = where
            by_name[key.name] = where
            out.append((where, key))
    return out
