"""Each service's own database, through one Tortoise app and connection per service.

A service's tables live in its own module (`sagashop.store.<service>`) and only that service
touches them, so the services can sit in one SQLite file each, share one PostgreSQL database
(their tables are prefixed), or live on different servers.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, NoReturn

from tortoise import context as tortoise_context
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.context import TortoiseContext, _current_context

from sagashop.private import private_sqlite
from sagashop.store.batch import Database
from sagashop.store.errors import OutsideTheStore
from sagashop.store.schema import Migrator, SchemaError, migrations_of
from sagashop.store.tortoise_fix import release_the_connection_when_begin_fails

log = logging.getLogger(__name__)


class Store:
    """The databases of the services one process runs: for each service, its URL and the
    module of its tables.

    Tortoise's model classes, and the SQL it caches for them, belong to the process: one store
    may be open at a time (tests open them one after the other)."""

    _open: ClassVar[Store | None] = None

    def __init__(
        self,
        urls: Mapping[str, str],
        tables: Mapping[str, str],
        migrations: Mapping[str, str] | None = None,
    ) -> None:
        self.urls = dict(urls)
        self.tables = dict(tables)
        self.migrations = {name: migrations_of(name) for name in urls} | dict(migrations or {})
        """Each service's package of migrations (`sagashop.store.schema`)."""
        self.tortoise = TortoiseContext()
        self.databases = {
            name: Database(name, _sqlite_file(url)) for name, url in self.urls.items()
        }
        """Each service's cheap reads, and batches taken on an actor's thread (`Database`)."""

    def context(self) -> contextvars.Context:
        """A fresh context for one task: Tortoise finds this store's connections through a
        ContextVar, and a fresh context starts outside anybody else's transaction."""
        context = contextvars.Context()
        context.run(_current_context.set, self.tortoise)
        return context

    async def open(self, migrate: bool = True) -> None:
        """Connect and bring each database to the code's latest migration, or, with `migrate`
        off, raise `SchemaError` unless it is there already. Must run in a task started with
        `context()`."""
        await self.connect()
        try:
            for migrator in self.migrators():
                await (self._migrate(migrator) if migrate else self._require_latest(migrator))
        except BaseException:
            await self.close()
            raise

    async def connect(self) -> None:
        """Connect, leaving the tables as they are (`open` migrates them too)."""
        if Store._open is not None:
            raise RuntimeError("another Store is open in this process; close it first")
        release_the_connection_when_begin_fails()
        Store._open = self
        tortoise_context._global_context = _Outside()  # type: ignore[assignment]
        try:
            for url in self.urls.values():
                _make_sqlite_directory(url)
            # Tortoise caches each table's SQL keyed by connection name and table, not by
            # dialect: a store opened after one on another database must not reuse it.
            EXECUTOR_CACHE.clear()
            await self.tortoise.init(config=self._config())
        except BaseException:
            await self.close()
            raise

    def migrators(self) -> list[Migrator]:
        return [Migrator(service, self.migrations[service]) for service in self.urls]

    @staticmethod
    async def _migrate(migrator: Migrator) -> None:
        for done in await migrator.migrate():
            log.info("%s: %s", migrator.service, done)

    @staticmethod
    async def _require_latest(migrator: Migrator) -> None:
        """`--migrate off`: an operator migrates as a step of their own, before starting."""
        position = await migrator.position()
        if position.behind:
            raise SchemaError(
                f"the {migrator.service} database is at {position.current} and this code needs "
                f"{position.latest}: run `python run.py migrate` first (or start without "
                "--migrate off)"
            )

    async def ping(self, service: str) -> None:
        """Raises unless the service's database answers."""
        await self.tortoise.connections.get(service).execute_query("SELECT 1")

    async def close(self) -> None:
        for database in self.databases.values():
            database.close()
        await self.tortoise.close_connections()
        if Store._open is self:
            Store._open = None
            tortoise_context._global_context = None

    def _config(self) -> dict[str, Any]:
        return {
            "connections": self.urls,
            "apps": {
                service: {"models": [self.tables[service]], "default_connection": service}
                for service in self.urls
            },
        }


class _Outside:
    """Where Tortoise looks, while a store is open, for a query made outside its context (its
    fallback, for those who call `Tortoise.init`, which sagashop does not): a task that queries
    must start in the store's context, and one that did not fails at its first query, saying so."""

    def __getattr__(self, name: str) -> NoReturn:
        raise OutsideTheStore(
            "a query ran outside the store's context: start the task that makes it with "
            "`loop.create_task(work, context=store.context())` (as `LoopBridge` and `Node` do), "
            "not with a bare `asyncio.create_task`"
        )


def _make_sqlite_directory(url: str) -> None:
    if (path := _sqlite_file(url)) is not None:
        private_sqlite(Path(path))


def _sqlite_file(url: str) -> str | None:
    """The file of a SQLite URL (None for PostgreSQL, or SQLite in memory)."""
    if url.startswith("sqlite://") and ":memory:" not in url:
        return url.removeprefix("sqlite://").split("?")[0]
    return None
