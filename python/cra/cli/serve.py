"""`cra serve`: its flags, then the configuration, then uvicorn until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import logging
import math
import sqlite3
import sys
from typing import Any

from ..errors import CraError
from ..server.config import DEFAULT_STORE, ServerConfig
from ..server.deadline import header_protocol
from .exits import EXIT_OK, EXIT_USAGE

__all__ = ["add_commands", "run"]


def _log_to_stderr(level: str) -> None:
    """The server's own messages (start-up, the final flush) beside uvicorn's."""
    log = logging.getLogger("cra.server")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
        log.addHandler(handler)
    log.setLevel(level.upper() if level.upper() in logging._nameToLevel else "INFO")
    log.propagate = False


def _reason(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        text = f"{e.strerror}: {e.filename}" if e.filename else e.strerror
    else:
        text = str(e) or type(e).__name__
    return " ".join(text.split())[:500]


def run(args: argparse.Namespace) -> int:
    """Serves the runtime API; returns once the server has shut down."""
    try:
        config = ServerConfig.from_env().with_args(args).validated()
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    try:
        import uvicorn

        from ..server.app import create_app
    except ImportError as e:
        print(
            f"error: cra serve needs the server extra (pip install 'cra[server]'): {e}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    _log_to_stderr(config.log_level)
    try:
        app = create_app(config)
    except (CraError, OSError, sqlite3.Error) as e:
        # A store that cannot be opened or written, an unreadable atlas: one line.
        print(f"error: cra serve cannot start: {_reason(e)}", file=sys.stderr)
        return EXIT_USAGE
    protocol = header_protocol(config.header_timeout)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            log_level=config.log_level,
            access_log=config.access_log,
            timeout_graceful_shutdown=math.ceil(config.shutdown_timeout),
            ws_max_size=64 * 1024,
            proxy_headers=False,
            server_header=False,
            http=protocol or "auto",
            limit_concurrency=config.max_connections,
        )
    )
    server.run()
    return EXIT_OK


def add_commands(sub: Any) -> None:
    """Adds `cra serve` to the CLI's subparsers."""
    p = sub.add_parser(
        "serve",
        help="serve the runtime over HTTP (needs the `server` extra)",
        description="Serve the CRA runtime API over HTTP. Every flag has a CRA_* "
        "environment variable; flags win.",
    )
    p.add_argument("--host", help="address to listen on (CRA_HOST, default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (CRA_PORT, default 8420)")
    p.add_argument("--atlas-dir", help="load every atlas in this directory (CRA_ATLAS_DIR)")
    p.add_argument("--store", help=f"SQLite trace store (CRA_STORE, default {DEFAULT_STORE})")
    p.add_argument(
        "--api-keys",
        help="comma-separated NAME:ROLE:KEY entries, ROLE being agent, approver or admin; "
        "a bare KEY is an agent key (CRA_API_KEYS)",
    )
    p.add_argument(
        "--api-keys-file",
        help="JSON or TOML file of {name, role, sha256} keys (CRA_API_KEYS_FILE)",
    )
    p.add_argument("--max-body-bytes", type=int, help="body limit (CRA_MAX_BODY_BYTES, 1 MiB)")
    p.add_argument("--hash", dest="hash_algorithm", help="sha256 or blake3 (CRA_HASH)")
    p.add_argument(
        "--clock-skew", dest="clock_skew_seconds", help="seconds or off (CRA_CLOCK_SKEW)"
    )
    p.add_argument("--memory-limit", type=int, help="events kept in memory (CRA_MEMORY_LIMIT)")
    p.add_argument("--executors", help="module:attribute of executors (CRA_EXECUTORS)")
    p.add_argument("--shutdown-timeout", type=float, help="seconds (CRA_SHUTDOWN_TIMEOUT, 30)")
    p.add_argument("--access-log", action="store_true", default=None, help="log every request")
    p.add_argument(
        "--allowed-hosts",
        help="comma-separated Host values answered, * for any (CRA_ALLOWED_HOSTS; default "
        "localhost, 127.0.0.1 and [::1] when bound to loopback, else any)",
    )
    p.add_argument(
        "--allowed-origins",
        help="comma-separated browser origins allowed, * for any (CRA_ALLOWED_ORIGINS; "
        "default only the server's own loopback origins)",
    )
    p.add_argument(
        "--header-timeout",
        type=float,
        help="seconds to send a request's headers (CRA_HEADER_TIMEOUT, default 10)",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        help="connections served at once, 503 over it (CRA_MAX_CONNECTIONS, default 1000)",
    )
    p.add_argument("--log-level", help="uvicorn log level (CRA_LOG_LEVEL, default info)")
    p.add_argument(
        "--signing-key",
        help="Ed25519 private key (PKCS#8 PEM, `cra keys generate`) that signs checkpoints "
        "into every chain (CRA_SIGNING_KEY_FILE)",
    )
    p.set_defaults(func=run)
