"""Settings of `cra serve`: `CRA_*` environment variables, flags, defaults.

Flags (declared by `cra.cli.serve`) win over the environment, the
environment over the defaults. This module imports nothing from FastAPI,
so the CLI can build its parser (and `cra --help` can run) without the
`server` extra installed.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from .keys import ApiKey, KeySpecError, combine, load_key_file, parse_entries

__all__ = ["DEFAULT_STORE", "ServerConfig"]

DEFAULT_STORE = os.path.join("cra-traces", "cra.db")


@dataclass(frozen=True)
class ServerConfig:
    """Everything the HTTP server needs to start."""

    host: str = "127.0.0.1"
    port: int = 8420
    #: Atlas directories and `*.json` manifests in it are loaded at start.
    atlas_dir: Optional[str] = None
    #: The SQLite file every sealed event goes to (`:memory:` for none on disk).
    store: str = DEFAULT_STORE
    #: With keys, every endpoint but `/v1/health` needs one. Each entry is
    #: `NAME:ROLE:KEY` or a bare `KEY` (an agent key; see `cra.server.keys`).
    api_keys: Tuple[str, ...] = field(default=(), repr=False)
    #: A JSON or TOML file of `{name, role, sha256}` keys (digests only).
    api_keys_file: Optional[str] = None
    #: Request bodies larger than this are refused with 413.
    max_body_bytes: int = 1 << 20
    hash_algorithm: str = "sha256"
    #: Allowed distance of a request's timestamp from the clock; None: unchecked.
    clock_skew_seconds: Optional[float] = 300.0
    #: Events the runtime keeps in memory (the store keeps every event).
    memory_limit: int = 100_000
    #: `module:attribute` naming a mapping {action id: callable} or a
    #: callable(runtime) that registers executors.
    executors: Optional[str] = None
    #: How long shutdown waits for requests to finish and traces to be written.
    shutdown_timeout: float = 30.0
    access_log: bool = False
    log_level: str = "info"
    #: Serve `POST /v1/resolve` by the lean ASGI path (same checks and answers).
    fast_resolve: bool = True
    #: `Host` values answered (`*`: any); None: loopback names when bound to
    #: loopback, any host otherwise (`cra.server.hosts.HostCheck`).
    allowed_hosts: Optional[Tuple[str, ...]] = None
    #: Seconds a connection may take to send a request's headers.
    header_timeout: float = 10.0
    #: Connections (and requests in flight) served at once; over it, 503.
    max_connections: int = 1000
    #: Browser origins allowed besides the server's own loopback origins (`*`: any).
    allowed_origins: Tuple[str, ...] = ()
    #: An Ed25519 private key (PKCS#8 PEM) that signs checkpoints into
    #: every chain (`cra keys generate`); None: no signing.
    signing_key: Optional[str] = None

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> ServerConfig:
        """Defaults overridden by the `CRA_*` environment variables."""
        env = os.environ if env is None else env
        values: Dict[str, Any] = {}
        for name, (var, parse) in _ENV.items():
            text = env.get(var)
            if text is not None and text.strip() != "":
                values[name] = _parse(var, text.strip(), parse)
        return cls(**values)

    def with_args(self, args: argparse.Namespace) -> ServerConfig:
        """This configuration with every flag that was given applied."""
        values: Dict[str, Any] = {}
        for name, (_var, parse) in _ENV.items():
            given = getattr(args, name, None)
            if given is not None:
                values[name] = _parse(f"--{name.replace('_', '-')}", str(given), parse)
        return replace(self, **values)

    def validated(self) -> ServerConfig:
        """Raises ValueError for a setting no server could run with."""
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is not between 0 and 65535")
        if self.max_body_bytes < 1:
            raise ValueError("the body limit must be at least 1 byte")
        if self.memory_limit < 1:
            raise ValueError("the memory limit must be at least 1 event")
        if not self.header_timeout > 0:
            raise ValueError("the header timeout must be more than 0 seconds")
        if self.max_connections < 1:
            raise ValueError("the connection limit must be at least 1")
        if self.shutdown_timeout < 0:
            raise ValueError("the shutdown timeout cannot be negative")
        if self.signing_key and self.store.startswith(("postgresql://", "postgres://")):
            raise ValueError(
                "signed checkpoints cannot be combined with a PostgreSQL store yet "
                "(the store re-seals a chain several replicas write to)"
            )
        if any(not k for k in self.api_keys):
            raise ValueError("an API key cannot be empty")
        self.keys()
        return self

    def keys(self) -> Tuple[ApiKey, ...]:
        """The configured keys (entries, then the key file's); raises
        ValueError, in one line that never holds a key, for a bad entry, a
        bad file, or two entries with one key or one name."""
        entries = parse_entries(self.api_keys)
        from_file = load_key_file(self.api_keys_file) if self.api_keys_file else []
        return tuple(key for _, key in combine(entries, from_file))


def _keys(text: str) -> Tuple[str, ...]:
    entries = tuple(k.strip() for k in text.split(",") if k.strip())
    parse_entries(entries)  # a bad entry is refused where it was given
    return entries


def _key_file(text: str) -> str:
    load_key_file(text)
    return text


def _names(text: str) -> Tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def _skew(text: str) -> Optional[float]:
    return None if text.lower() in ("off", "none", "disabled") else float(text)


def _flag(text: str) -> bool:
    return text.lower() in ("1", "true", "yes", "on")


_ENV: Dict[str, Tuple[str, Callable[[str], Any]]] = {
    "host": ("CRA_HOST", str),
    "port": ("CRA_PORT", int),
    "atlas_dir": ("CRA_ATLAS_DIR", str),
    "store": ("CRA_STORE", str),
    "api_keys": ("CRA_API_KEYS", _keys),
    "api_keys_file": ("CRA_API_KEYS_FILE", _key_file),
    "max_body_bytes": ("CRA_MAX_BODY_BYTES", int),
    "hash_algorithm": ("CRA_HASH", str),
    "clock_skew_seconds": ("CRA_CLOCK_SKEW", _skew),
    "memory_limit": ("CRA_MEMORY_LIMIT", int),
    "executors": ("CRA_EXECUTORS", str),
    "shutdown_timeout": ("CRA_SHUTDOWN_TIMEOUT", float),
    "access_log": ("CRA_ACCESS_LOG", _flag),
    "log_level": ("CRA_LOG_LEVEL", str),
    "fast_resolve": ("CRA_FAST_RESOLVE", _flag),
    "header_timeout": ("CRA_HEADER_TIMEOUT", float),
    "max_connections": ("CRA_MAX_CONNECTIONS", int),
    "allowed_hosts": ("CRA_ALLOWED_HOSTS", _names),
    "allowed_origins": ("CRA_ALLOWED_ORIGINS", _names),
    "signing_key": ("CRA_SIGNING_KEY_FILE", str),
}


def _parse(source: str, text: str, parse: Callable[[str], Any]) -> Any:
    try:
        return parse(text)
    except KeySpecError as e:  # names the entry, never echoes the keys
        raise ValueError(f"{source}: {e}") from None
    except ValueError:
        raise ValueError(f"{source}: cannot read {text!r}") from None
