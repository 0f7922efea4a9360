"""Tables as the audit reads them: named columns, rows of JSON values, sent between processes
as they are and read back by name (see `sagashop.audit`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypedDict

from tortoise.models import Model
from tortoise.transactions import in_transaction

from sagashop.store.render import json_value


class Table(TypedDict):
    columns: list[str]
    rows: list[list[Any]]


async def table(model: type[Model], *columns: str) -> Table:
    """Every row of `model`, with the given columns."""
    found = await model.all().values_list(*columns)
    return {"columns": list(columns), "rows": [[json_value(v) for v in row] for row in found]}


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
