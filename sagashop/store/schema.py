"""Each service's tables at the shape its code expects, through Tortoise's own migrations: one
package per service (`sagashop/store/migrations/<service>/`), written by Tortoise's
autodetector from the models (`python run.py makemigrations`) and never edited after.

A store migrates each service's database when it opens, before the service takes an event:
one migration per transaction, recorded in Tortoise's `tortoise_migrations` table in that same
transaction, so a failed one changes nothing and a crash never leaves one half-recorded. The
transaction holds the database's lock for migrating (PostgreSQL: an advisory lock; SQLite: its
write lock), so processes starting together apply each migration once.

A database written before migrations existed (tables made by `generate_schemas`) holds exactly
what the first migration makes: finding those tables and no record, the store records the first
migration as applied and goes on from there, never rebuilding.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.connection import get_connection
from tortoise.context import TortoiseContext
from tortoise.migrations.autodetector import MigrationAutodetector
from tortoise.migrations.graph import MigrationKey
from tortoise.migrations.loader import MigrationLoader
from tortoise.migrations.migration import Migration
from tortoise.migrations.operations import CreateModel
from tortoise.migrations.recorder import MigrationRecorder
from tortoise.migrations.schema_editor import (
    AsyncpgSchemaEditor,
    BaseSchemaEditor,
    SqliteSchemaEditor,
)
from tortoise.migrations.schema_generator.state import State
from tortoise.migrations.schema_generator.state_apps import StateApps
from tortoise.migrations.writer import MigrationWriter, format_migration_name
from tortoise.transactions import in_transaction

from sagashop.errors import SagashopError

MIGRATIONS = "sagashop.store.migrations"
"""The package holding one package of migrations per service."""
LOCK = 0x5A6A5
"""The PostgreSQL advisory lock held while migrating (any number no one else uses)."""
RECORDS = "tortoise_migrations"

__all__ = ["Migrator", "Position", "SchemaError", "detect_changes", "format_migration_name"]


class SchemaError(SagashopError):
    """A service's database is not at the shape this code needs and will not be made so here:
    the process stops, and the message says what the operator can do."""


def migrations_of(service: str) -> str:
    return f"{MIGRATIONS}.{service}"


@dataclass(frozen=True)
class Position:
    """Where one service's database stands against the code's migrations."""

    service: str
    applied: tuple[str, ...]
    pending: tuple[str, ...]
    adopt: bool
    """Its tables predate migrations: the first migration is to be recorded, not run."""
    latest: str
    """The code's latest migration."""

    @property
    def current(self) -> str:
        return self.applied[-1] if self.applied else "no migration"

    @property
    def behind(self) -> bool:
        return self.adopt or bool(self.pending)


class Migrator:
    """One service's migrations against its connection (call inside the store's context)."""

    def __init__(self, service: str, module: str) -> None:
        self.service = service
        self.module = module

    async def position(self) -> Position:
        """Where the database stands; raises `SchemaError` if it is ahead of the code or its
        tables are not what the first migration makes. Reads only."""
        connection = get_connection(self.service)
        graph = await self._plan()
        applied = await _applied(connection, self.service) if await _has_records(connection) else []
        self._refuse_unknown(applied, graph)
        adopt = not applied and await self._predates_migrations(connection, graph[0])
        done = set(applied) | ({graph[0].name} if adopt else set())
        pending = tuple(m.name for m in graph if m.name not in done)
        return Position(self.service, tuple(applied), pending, adopt, graph[-1].name)

    async def migrate(self) -> list[str]:
        """Apply what is pending, each migration in its own locked transaction; a line for each
        one this process applied or adopted (another may have applied some meanwhile)."""
        graph = await self._plan()
        done: list[str] = []
        while (step := await self._take_one_step(graph)) is not None:
            done.append(step)
        return done

    async def sql(self) -> list[str]:
        """The SQL that `migrate` would run now, as comments and statements."""
        position = await self.position()
        graph = {m.name: m for m in await self._plan()}
        lines = [f"-- {self.service}: at {position.current}"]
        if position.adopt:
            first = next(iter(graph))
            lines.append(f"-- {self.service}: its tables predate migrations: record {first}")
        if not position.pending:
            lines.append(f"-- {self.service}: nothing to apply")
        state = await _state_after(
            self.service, [m for m in graph.values() if m.name not in position.pending]
        )
        for name in position.pending:
            editor = _editor(get_connection(self.service), collect_sql=True)
            await graph[name].apply(state, schema_editor=editor, collect_sql=True)
            lines += [f"-- {self.service}: {name}", *editor.collected_sql]
        return lines

    async def _take_one_step(self, graph: Sequence[Migration]) -> str | None:
        """Under the lock, with what is applied read afresh: adopt, or apply the next pending
        migration, recording it in the same transaction. None once nothing is pending."""
        async with _migrating(self.service) as connection:
            applied = await _applied(connection, self.service)
            self._refuse_unknown(applied, graph)
            if not applied and await self._predates_migrations(connection, graph[0]):
                await _record(connection, self.service, graph[0].name)
                return f"its tables predate migrations: recorded as at {graph[0].name}"
            pending = [m for m in graph if m.name not in applied]
            if not pending:
                return None
            state = await _state_after(self.service, [m for m in graph if m.name in applied])
            try:
                await pending[0].apply(state, schema_editor=_editor(connection))
            except Exception as error:
                raise SchemaError(
                    f"{self.service}: migration {pending[0].name} failed, so it was rolled back "
                    f"and the database is still at {applied[-1] if applied else 'no migration'} "
                    f"({type(error).__name__}: {error})"
                ) from error
            await _record(connection, self.service, pending[0].name)
            return f"applied migration {pending[0].name}"

    async def _plan(self) -> list[Migration]:
        """The code's migrations for this service, in the order they apply."""
        loader = MigrationLoader({self.service: {"migrations": self.module}}, _NoRecords())
        await loader.build_graph()
        leaves = loader.graph.leaf_nodes(self.service)
        if len(leaves) != 1:
            raise SchemaError(f"{self.service}: the migrations in {self.module} have no one head")
        plan = loader.graph.forwards_plan(leaves[0])
        return [loader.graph.nodes[key] for key in plan]  # type: ignore[misc]

    def _refuse_unknown(self, applied: Sequence[str], graph: Sequence[Migration]) -> None:
        known = {m.name for m in graph}
        unknown = [name for name in applied if name not in known]
        if unknown:
            raise SchemaError(
                f"the {self.service} database is at migration {applied[-1]}, which this code "
                f"does not know (its latest is {graph[-1].name}): a newer sagashop wrote it. "
                "Run that version, or restore a backup taken before it ran"
            )

    async def _predates_migrations(self, connection: BaseDBAsyncClient, first: Migration) -> bool:
        """Whether the first migration's tables are all there already (and none is recorded):
        written by sagashop before it had migrations. Some of them, or other columns, is a
        database nobody should guess about."""
        expected = _tables_made_by(first)
        found = await _columns(connection, expected)
        if not found:
            return False
        for table, columns in expected.items():
            if found.get(table) != columns:
                raise SchemaError(
                    f"the {self.service} database has tables but no migration recorded, and "
                    f"{table} is not as sagashop made it before migrations (columns "
                    f"{sorted(found.get(table, ()))}, expected {sorted(columns)}): "
                    "not adopting it; point the service at its own database"
                )
        return True


async def detect_changes(services: dict[str, str]) -> list[MigrationWriter]:
    """Tortoise's autodetector over the services' models (service -> module of its tables):
    the migrations that would bring the migration packages level with the models. Touches no
    database; run it while no `Store` is open (the model classes are the process's)."""
    apps = {
        service: {
            "models": [models],
            "default_connection": service,
            "migrations": migrations_of(service),
        }
        for service, models in services.items()
    }
    connections = {service: "sqlite://:memory:" for service in services}
    async with TortoiseContext() as context:
        await context.init(config={"connections": connections, "apps": apps})
        assert context.apps is not None
        return await MigrationAutodetector(context.apps, apps).changes()


@asynccontextmanager
async def _migrating(service: str) -> AsyncIterator[BaseDBAsyncClient]:
    """A transaction in which this process alone migrates the database, until it commits."""
    if not _is_postgres(get_connection(service)):
        await _ensure_records(get_connection(service))
    async with in_transaction(service) as connection:
        if _is_postgres(connection):
            await connection.execute_query("SELECT pg_advisory_xact_lock($1)", [LOCK])
            await _ensure_records(connection)
        else:  # a write as the first statement takes SQLite's write lock, waiting for it
            await connection.execute_query(f'UPDATE "{RECORDS}" SET "app" = "app" WHERE 0')
        yield connection


async def _ensure_records(connection: BaseDBAsyncClient) -> None:
    await MigrationRecorder(connection).ensure_schema(_editor(connection))


async def _record(connection: BaseDBAsyncClient, service: str, name: str) -> None:
    await MigrationRecorder(connection).record_applied(service, name)


async def _has_records(connection: BaseDBAsyncClient) -> bool:
    return RECORDS in await _columns(connection, {RECORDS: frozenset()})


async def _applied(connection: BaseDBAsyncClient, service: str) -> list[str]:
    """The service's migrations recorded as applied, in the order they were."""
    mark = "$1" if _is_postgres(connection) else "?"
    _, rows = await connection.execute_query(
        f'SELECT "name" FROM "{RECORDS}" WHERE "app" = {mark} ORDER BY "applied_at", "id"',
        [service],
    )
    return [row["name"] for row in rows]


async def _columns(
    connection: BaseDBAsyncClient, tables: dict[str, frozenset[str]]
) -> dict[str, frozenset[str]]:
    """The columns of those of `tables` that exist."""
    if _is_postgres(connection):
        query = (
            "SELECT table_name AS t, column_name AS c FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = ANY($1::text[])"
        )
        _, rows = await connection.execute_query(query, [list(tables)])
    else:
        marks = ", ".join("?" for _ in tables)
        query = (
            "SELECT m.name AS t, p.name AS c FROM sqlite_master AS m, pragma_table_info(m.name) "
            f"AS p WHERE m.type = 'table' AND m.name IN ({marks})"
        )
        _, rows = await connection.execute_query(query, list(tables))
    found: dict[str, set[str]] = {}
    for row in rows:
        found.setdefault(row["t"], set()).add(row["c"])
    return {table: frozenset(columns) for table, columns in found.items()}


def _tables_made_by(migration: Migration) -> dict[str, frozenset[str]]:
    return {
        op.model._meta.db_table: frozenset(op.model._meta.fields_db_projection.values())
        for op in migration.operations
        if isinstance(op, CreateModel)
    }


async def _state_after(service: str, migrations: Sequence[Migration]) -> State:
    """The models as these migrations leave them (what the next one starts from)."""
    state = State(models={}, apps=StateApps(default_connections={service: service}))
    for migration in migrations:
        await migration.apply(state, dry_run=True)
    return state


def _editor(connection: BaseDBAsyncClient, collect_sql: bool = False) -> BaseSchemaEditor:
    editor = AsyncpgSchemaEditor if _is_postgres(connection) else SqliteSchemaEditor
    return editor(connection, atomic=True, collect_sql=collect_sql)


def _is_postgres(connection: BaseDBAsyncClient) -> bool:
    return bool(connection.capabilities.dialect == "postgres")


class _NoRecords(MigrationRecorder):
    """The loader asks what is applied; the migrator reads that itself, under its lock."""

    def __init__(self) -> None:
        super().__init__(connection=None)

    async def applied_migrations(self) -> list[MigrationKey]:
        return []
