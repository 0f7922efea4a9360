"""Migrations: the models and the migration files agree; a store written before migrations is
adopted and carried forward, never rebuilt; a database ahead of the code, or behind it with
migrating off, is refused; a migration that fails changes nothing.

Each test opens stores of its own, one at a time (see `Store`), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest

import sagashop.store.migrations.order as order_migrations
from sagashop import cli
from sagashop.actors import SERVICES
from sagashop.config import SQLITE_PRAGMAS
from sagashop.store import Store
from sagashop.store.schema import SchemaError, detect_changes
from tests.stores import BEFORE_MIGRATIONS, facts, shape, written_before_migrations
from tests.support import BACKENDS, database

T = TypeVar("T")
TABLES = {service.name: service.models for service in SERVICES}
ORDER_MIGRATIONS = sorted(p.stem for p in Path(order_migrations.__path__[0]).glob("0*.py"))


def urls(database_url: str | None, data_dir: Path) -> dict[str, str]:
    return {
        name: database_url or f"sqlite://{data_dir / name}.sqlite3?{SQLITE_PRAGMAS}"
        for name in TABLES
    }


async def within(store: Store, work: Coroutine[Any, Any, T]) -> T:
    return await asyncio.get_running_loop().create_task(work, context=store.context())


@asynccontextmanager
async def opened(store: Store, migrate: bool = True) -> AsyncIterator[Store]:
    await within(store, store.open(migrate))
    try:
        yield store
    finally:
        await within(store, store.close())


async def positions(store: Store) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """Each service's applied and pending migrations."""
    found = {}
    for migrator in store.migrators():
        position = await within(store, migrator.position())
        found[migrator.service] = (position.applied, position.pending)
    return found


async def test_the_migrations_match_the_models() -> None:
    """A model changed without its migration (`run.py makemigrations`) fails here."""
    changes = await detect_changes(TABLES)
    assert [f"{w.app_label}.{w.name}" for w in changes] == []


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_store_from_before_migrations_is_adopted_and_migrated_like_a_new_one(
    backend: str, tmp_path: Path
) -> None:
    """Adopted at the first migration and carried to the latest, it ends with exactly the
    tables, columns and indexes a new store gets, and keeps every row: so the first migration
    makes exactly what main made before migrations."""
    async with (
        written_before_migrations(backend, tmp_path / "old") as old_url,
        database(backend) as new_url,
    ):
        old, new = urls(old_url, tmp_path / "old"), urls(new_url, tmp_path / "new")
        async with opened(Store(old, TABLES)) as store:
            at = await positions(store)
        async with opened(Store(new, TABLES)):
            pass
        assert at["order"] == (tuple(ORDER_MIGRATIONS), ())
        assert {name: pending for name, (_, pending) in at.items()} == dict.fromkeys(TABLES, ())
        for service in TABLES:
            assert await shape(old[service]) == await shape(new[service]), service
        assert await balance_of(old["user"], facts(backend)["user"]) == facts(backend)["balance"]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_database_ahead_of_the_code_is_refused(backend: str, tmp_path: Path) -> None:
    async with database(backend) as url:
        where = urls(url, tmp_path)
        async with opened(Store(where, TABLES)):
            pass
        await record_migration(where["order"], "order", "0999_from_a_newer_sagashop")
        with pytest.raises(SchemaError) as refused:
            await within(store := Store(where, TABLES), store.open())
    assert str(refused.value).startswith(
        "the order database is at migration 0999_from_a_newer_sagashop, which this code does not "
        f"know (its latest is {ORDER_MIGRATIONS[-1]})"
    )


@pytest.mark.parametrize("backend", BACKENDS)
async def test_with_migrating_off_a_database_behind_is_refused_until_migrated(
    backend: str, tmp_path: Path
) -> None:
    async with written_before_migrations(backend, tmp_path) as url:
        where = urls(url, tmp_path)
        before = await shape(where["order"])
        with pytest.raises(SchemaError, match=r"run `python run\.py migrate` first") as refused:
            await within(store := Store(where, TABLES), store.open(migrate=False))
        assert f"order database is at no migration and this code needs {ORDER_MIGRATIONS[-1]}" in (
            str(refused.value)
        )
        assert await shape(where["order"]) == before
        assert not await has_migration_records(where["order"])
        async with opened(Store(where, TABLES)):
            pass
        async with opened(Store(where, TABLES), migrate=False) as store:
            assert (await positions(store))["order"] == (tuple(ORDER_MIGRATIONS), ())


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_migration_that_fails_changes_nothing(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its first operation (a column added) succeeded, its second failed: both rolled back, and
    nothing recorded. The same store then opens with the real migrations."""
    broken = package_with_a_broken_migration(tmp_path / "packages", monkeypatch)
    async with database(backend) as url:
        where = urls(url, tmp_path)
        async with opened(Store(where, TABLES)):
            pass
        before = await shape(where["order"])
        store = Store(where, TABLES, migrations={"order": broken})
        with pytest.raises(SchemaError) as failed:
            await within(store, store.open())
        assert str(failed.value).startswith(
            "order: migration 0999_broken failed, so it was rolled back and the database is "
            f"still at {ORDER_MIGRATIONS[-1]}"
        )
        assert await shape(where["order"]) == before
        async with opened(Store(where, TABLES)) as store:
            assert (await positions(store))["order"] == (tuple(ORDER_MIGRATIONS), ())


def test_migrate_on_its_own_prints_the_sql_with_dry_run_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(BEFORE_MIGRATIONS / "sqlite", tmp_path / "data")
    flags = ["--data-dir", str(tmp_path / "data"), "--services", "order", "--log-format", "json"]

    assert cli.main(["migrate", "--dry-run", *flags]) == 0
    printed = capsys.readouterr().out
    assert "-- order: its tables predate migrations: record 0001_initial" in printed
    assert 'CREATE INDEX "idx_orders_status_' in printed
    assert not sqlite_has_records(tmp_path / "data" / "order.sqlite3")

    assert cli.main(["migrate", *flags]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "order: its tables predate migrations: recorded as at 0001_initial",
        *(f"order: applied migration {name}" for name in ORDER_MIGRATIONS[1:]),
        f"order: at {ORDER_MIGRATIONS[-1]}",
    ]
    assert cli.main(["migrate", *flags]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"order: at {ORDER_MIGRATIONS[-1]}, nothing to apply"
    ]


def package_with_a_broken_migration(root: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The order service's migrations, and one more whose second operation fails."""
    package = root / "broken_migrations" / "order"
    shutil.copytree(Path(order_migrations.__path__[0]), package, ignore=_caches)
    (root / "broken_migrations" / "__init__.py").write_text("")
    (package / "0999_broken.py").write_text(
        "from tortoise import fields, migrations\n"
        "from tortoise.migrations import operations as ops\n\n\n"
        "class Migration(migrations.Migration):\n"
        f"    dependencies = [('order', '{ORDER_MIGRATIONS[-1]}')]\n"
        "    operations = [\n"
        "        ops.AddField(model_name='Order', name='note', field=fields.IntField(null=True)),\n"
        "        ops.RunSQL('SELECT * FROM no_such_table'),\n"
        "    ]\n"
    )
    monkeypatch.syspath_prepend(str(root))
    return "broken_migrations.order"


def _caches(_folder: str, names: list[str]) -> list[str]:
    return [name for name in names if name == "__pycache__"]


async def record_migration(url: str, service: str, name: str) -> None:
    statement = "INSERT INTO tortoise_migrations (app, name, applied_at) VALUES ({}, {}, {})"
    if url.startswith("sqlite://"):
        with sqlite3.connect(_path(url)) as connection:
            connection.execute(statement.format("?", "?", "?"), (service, name, "2099-01-01"))
        return
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(statement.format("$1", "$2", "now()"), service, name)
    finally:
        await connection.close()


async def has_migration_records(url: str) -> bool:
    if url.startswith("sqlite://"):
        return sqlite_has_records(Path(_path(url)))
    connection = await asyncpg.connect(url)
    try:
        return bool(await connection.fetchval("SELECT to_regclass('tortoise_migrations')"))
    finally:
        await connection.close()


def sqlite_has_records(path: Path) -> bool:
    with sqlite3.connect(path) as connection:
        query = "SELECT count(*) FROM sqlite_master WHERE name = 'tortoise_migrations'"
        return bool(connection.execute(query).fetchone()[0])


async def balance_of(url: str, user: str) -> int:
    if url.startswith("sqlite://"):
        with sqlite3.connect(_path(url)) as connection:
            found = connection.execute("SELECT balance FROM users WHERE id = ?", (user,))
            return int(found.fetchone()[0])
    connection = await asyncpg.connect(url)
    try:
        return int(await connection.fetchval("SELECT balance FROM users WHERE id = $1::uuid", user))
    finally:
        await connection.close()


def _path(url: str) -> str:
    return url.removeprefix("sqlite://").split("?")[0]
