"""Each service's own database, through one Tortoise app and connection per service.

A service's tables live in its own module (`sagashop.store.<service>`) and only that service
touches them, so the services can sit in one SQLite file each, share one PostgreSQL database
(their tables are prefixed), or live on different servers.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.context import TortoiseContext, _current_context
from tortoise.transactions import in_transaction
from tortoise.utils import generate_schema_for_client

from sagashop.store.tortoise_fix import release_the_connection_when_begin_fails

SCHEMA_LOCK = 0x5A6A5
"""The PostgreSQL advisory lock taken while creating tables (any number no one else uses)."""


class Store:
    """The databases of the services one process runs: for each service, its URL and the
    module of its tables.

    Tortoise's model classes, and the SQL it caches for them, belong to the process: one store
    may be open at a time (tests open them one after the other)."""

    _open: ClassVar[Store | None] = None

    def __init__(self, urls: Mapping[str, str], tables: Mapping[str, str]) -> None:
        self.urls = dict(urls)
        self.tables = dict(tables)
        self.tortoise = TortoiseContext()

    def context(self) -> contextvars.Context:
        """A fresh context for one task: Tortoise finds this store's connections through a
        ContextVar, and a fresh context starts outside anybody else's transaction."""
        context = contextvars.Context()
        context.run(_current_context.set, self.tortoise)
        return context

    async def open(self) -> None:
        """Connect and create missing tables. Must run in a task started with `context()`."""
        if Store._open is not None:
            raise RuntimeError("another Store is open in this process; close it first")
        release_the_connection_when_begin_fails()
        Store._open = self
        try:
            for url in self.urls.values():
                _make_sqlite_directory(url)
            # Tortoise caches each table's SQL keyed by connection name and table, not by
            # dialect: a store opened after one on another database must not reuse it.
            EXECUTOR_CACHE.clear()
            await self.tortoise.init(config=self._config())
            await self._create_missing_tables()
        except BaseException:
            await self.close()
            raise

    async def _create_missing_tables(self) -> None:
        """On PostgreSQL under a lock of the database's: processes starting together on an
        empty database deadlocked creating the same tables (two replicas, measured); with the
        lock one creates them and the others find them there."""
        for connection in self.tortoise.connections.all():
            if connection.capabilities.dialect != "postgres":
                await generate_schema_for_client(connection, safe=True)
                continue
            async with in_transaction(connection.connection_name) as locked:
                await locked.execute_query("SELECT pg_advisory_xact_lock($1)", [SCHEMA_LOCK])
                await generate_schema_for_client(locked, safe=True)

    async def ping(self, service: str) -> None:
        """Raises unless the service's database answers."""
        await self.tortoise.connections.get(service).execute_query("SELECT 1")

    async def close(self) -> None:
        await self.tortoise.close_connections()
        if Store._open is self:
            Store._open = None

    def _config(self) -> dict[str, Any]:
        return {
            "connections": self.urls,
            "apps": {
                service: {"models": [self.tables[service]], "default_connection": service}
                for service in self.urls
            },
        }


def _make_sqlite_directory(url: str) -> None:
    if url.startswith("sqlite://") and ":memory:" not in url:
        Path(url.removeprefix("sqlite://").split("?")[0]).parent.mkdir(parents=True, exist_ok=True)
