"""`cra serve`: build the configuration, then run uvicorn until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import sys

from .config import ServerConfig

__all__ = ["run"]

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
    app = create_app(config)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            log_level=config.log_level,
            access_log=config.access_log,
            timeout_graceful_shutdown=config.shutdown_timeout,
            ws_max_size=64 * 1024,
            proxy_headers=False,
            server_header=False,
        )
    )
    server.run()
    return EXIT_OK
