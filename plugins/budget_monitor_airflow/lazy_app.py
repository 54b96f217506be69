"""An ASGI app built on its first request.

Every Airflow process that loads plugins (task processes too, for macros)
imports the plugin module; only the api-server serves requests, so only it
should pay for FastAPI and Airflow's security module.
"""

from __future__ import annotations

import importlib


class LazyApp:
    """Builds ``<module>:create_app()`` on the first request and serves it from then on."""

    def __init__(self, module: str) -> None:
        self.module = module
        self._app = None

    async def __call__(self, scope, receive, send) -> None:
        if self._app is None:
            self._app = importlib.import_module(self.module).create_app()
        await self._app(scope, receive, send)

    def __repr__(self) -> str:
        return f"{self.module}:create_app"
