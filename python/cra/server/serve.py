"""`cra serve`: build the configuration, then run uvicorn until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import logging
import math
import sys

from .config import ServerConfig

__all__ = ["run"]


def _log_to_stderr(level: str) -> None:
    """The server's own messages (start-up, the final flush) beside uvicorn's."""
    log = logging.getLogger("cra.server")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
        log.addHandler(handler)
    log.setLevel(level.upper() if level.upper() in logging._nameToLevel else "INFO")
    log.propagate = False


EXIT_OK, EXIT_USAGE = 0, 2


def run(args: argparse.Namespace) -> int:
    """Serves the runtime API; returns once the server has shut down."""
    try:
        config = ServerConfig.from_env().with_args(args).validated()
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    try:
        import uvicorn

        from .app import create_app
    except ImportError as e:
        print(
            f"error: cra serve needs the server extra (pip install 'cra[server]'): {e}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    _log_to_stderr(config.log_level)
    app = create_app(config)
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
        )
    )
    server.run()
    return EXIT_OK
