"""Each service's own database, through one Tortoise app and connection per service.

A service's models live in `sagashop.store.<service>` and only that service touches them, so the
services can sit in one SQLite file each, share one PostgreSQL database (their tables are
prefixed), or live on different servers.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.context import TortoiseContext, _current_context


class Store:
    """The databases of the services one process runs."""

    def __init__(self, urls: Mapping[str, str]) -> None:
        self.urls = dict(urls)
        self.tortoise = TortoiseContext()

    def context(self) -> contextvars.Context:
        """A fresh context for one task: Tortoise finds this store's connections through a
        ContextVar, and a fresh context starts outside anybody else's transaction."""
        context = contextvars.Context()
        context.run(_current_context.set, self.tortoise)
        return context

    async def open(self) -> None:
        """Connect and create missing tables. Must run in a task started with `context()`."""
        for url in self.urls.values():
            _make_sqlite_directory(url)
        # Tortoise caches each table's SQL per process, keyed by connection name and table, not
        # by dialect: a store opened after one on another backend (as in the tests) must not
        # reuse it. One store per process at a time.
        EXECUTOR_CACHE.clear()
        await self.tortoise.init(config=self._config())
        await self.tortoise.generate_schemas(safe=True)

    async def close(self) -> None:
        await self.tortoise.close_connections()

    def _config(self) -> dict[str, Any]:
        return {
            "connections": self.urls,
            "apps": {
                service: {"models": [f"sagashop.store.{service}"], "default_connection": service}
                for service in self.urls
            },
        }


def _make_sqlite_directory(url: str) -> None:
    if url.startswith("sqlite://") and ":memory:" not in url:
        Path(url.removeprefix("sqlite://").split("?")[0]).parent.mkdir(parents=True, exist_ok=True)
