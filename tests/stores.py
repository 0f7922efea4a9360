"""Stores as operators have them: what an older main wrote (`tests/fixtures/`), and the shape of
a database's tables, read with the drivers themselves (not through Tortoise) to compare two."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg

from tests.support import database

BEFORE_MIGRATIONS = Path(__file__).parent / "fixtures" / "store-c9859d9"
"""Written by main at c9859d9, which made its tables with `generate_schemas` (see its README)."""


def facts(backend: str) -> dict[str, Any]:
    """A player and an item of the fixture, with what they were left with."""
    found: dict[str, Any] = json.loads((BEFORE_MIGRATIONS / "fixture.json").read_text())[backend]
    return found


@asynccontextmanager
async def written_before_migrations(backend: str, data_dir: Path) -> AsyncIterator[str | None]:
    """A copy of the fixture: its SQLite files put in `data_dir` (None: no database URL), or a
    fresh PostgreSQL database loaded from its dump (its URL)."""
    if backend == "sqlite":
        shutil.copytree(BEFORE_MIGRATIONS / "sqlite", data_dir, dirs_exist_ok=True)
        yield None
        return
    async with database("postgres") as url:
        assert url is not None
        connection = await asyncpg.connect(url)
        try:
            await connection.execute((BEFORE_MIGRATIONS / "postgres.sql").read_text())
        finally:
            await connection.close()
        yield url


Shape = set[tuple[Any, ...]]


async def shape(url: str) -> Shape:
    """Every table's columns (name, type, null or not, default, key) and indexes (name, unique,
    columns) of one database, but the table of recorded migrations."""
    if url.startswith("sqlite://"):
        return _sqlite_shape(url.removeprefix("sqlite://").split("?")[0])
    connection = await asyncpg.connect(url)
    try:
        columns = await connection.fetch(
            "SELECT table_name, column_name, data_type, is_nullable, column_default "
            "FROM information_schema.columns WHERE table_schema = 'public'"
        )
        indexes = await connection.fetch(
            "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
        )
    finally:
        await connection.close()
    found = {("column", *row.values()) for row in columns} | {
        ("index", *row.values()) for row in indexes
    }
    return {row for row in found if "tortoise_migrations" not in row[1]}


def _sqlite_shape(path: str) -> Shape:
    found: Shape = set()
    with sqlite3.connect(path) as connection:
        tables = [
            name
            for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
            if not name.startswith("sqlite_") and name != "tortoise_migrations"
        ]
        for table in tables:
            for _, name, kind, notnull, default, key in connection.execute(
                f'PRAGMA table_info("{table}")'
            ):
                found.add(("column", table, name, kind, notnull, default, key))
            for _, index, unique, *_ in connection.execute(f'PRAGMA index_list("{table}")'):
                parts = connection.execute(f'PRAGMA index_info("{index}")').fetchall()
                found.add(("index", table, index, unique, tuple(p[2] for p in parts)))
    return found
