"""Tables as the audit reads them: named columns, rows of JSON values, sent between processes
as they are and read back by name (see `sagashop.audit`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypedDict

from tortoise.models import Model
from tortoise.transactions import in_transaction

from sagashop.store.render import json_value


class Table(TypedDict):
    columns: list[str]
    rows: list[list[Any]]


CHUNK = 5_000


async def table(model: type[Model], *columns: str) -> Table:
    """Every row of `model`, with the given columns, as the database driver returns them (the
    ORM's building of each row, dates parsed, cost more than the read itself at 100,000 rows),
    made JSON a chunk at a time, so that the loop serves others meanwhile."""
    meta = model._meta
    connection = meta.db
    query = connection.query_class.from_(meta.basetable).select(
        *(meta.fields_db_projection[name] for name in columns)
    )
    _, found = await connection.execute_query(str(query))
    rows: list[list[Any]] = []
    for start in range(0, len(found), CHUNK):
        rows += [[json_value(v) for v in row] for row in found[start : start + CHUNK]]
        await asyncio.sleep(0)
    return {"columns": list(columns), "rows": rows}


@asynccontextmanager
async def snapshot(connection_name: str) -> AsyncIterator[None]:
    """Every query inside sees the service's tables as of one moment, so a step that commits
    between two reads cannot show up in one table and not the other. PostgreSQL needs REPEATABLE
    READ for that (READ COMMITTED takes a new snapshot per statement); a SQLite transaction
    already reads one snapshot."""
    async with in_transaction(connection_name) as connection:
        if connection.capabilities.dialect == "postgres":
            await connection.execute_script("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield
