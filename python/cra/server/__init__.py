"""The CRA runtime API over HTTP (`cra serve`; needs the `server` extra).

    from cra.server import ServerConfig, create_app
    app = create_app(ServerConfig(store=":memory:", atlas_dir="atlases"))

FastAPI is imported only when `create_app` is first used, so that the CLI
and `cra.server.config` work without the extra installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import ServerConfig

__all__ = ["ServerConfig", "create_app"]

if TYPE_CHECKING:
    from .app import create_app


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module 'cra.server' has no attribute {name!r}")
