"""Writing many rows with one statement each way, which Tortoise's `bulk_create` and `update`
do not offer: a multi-row INSERT that skips rows already there and says which it wrote, and
one UPDATE run for many rows (`executemany`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pypika_tortoise.terms import Field
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.models import Model


async def insert_new(
    connection: BaseDBAsyncClient, rows: Sequence[Model], returning: Sequence[str]
) -> list[dict[str, Any]]:
    """INSERT `rows` (unsaved instances of one model) in one statement, skipping each that a
    unique constraint says is there already (written before, or earlier in `rows`); the
    `returning` columns of those written, in no particular order."""
    model = type(rows[0])
    meta = model._meta
    executor = connection.executor_class(model=model, db=connection)
    columns = list(executor.regular_columns)
    query = connection.query_class.into(meta.basetable).columns(
        *(meta.fields_db_projection[name] for name in columns)
    )
    values: list[Any] = []
    for row in rows:
        query = query.insert(*(executor.parameter(len(values) + i) for i in range(len(columns))))
        values += [meta.fields_map[name].to_db_value(getattr(row, name), row) for name in columns]
    query = query.on_conflict().do_nothing()
    columns_back = (meta.fields_db_projection[name] for name in returning)
    query = query.returning(*columns_back)  # type: ignore[operator]  # pypika types it as a Field
    return await connection.execute_query_dict(str(query), values)


async def update_each(
    connection: BaseDBAsyncClient, model: type[Model], column: str, values: Mapping[Any, Any]
) -> None:
    """Set `column` of each row (by primary key) to its value: one statement, many rows."""
    if not values:
        return
    meta = model._meta
    executor = connection.executor_class(model=model, db=connection)
    field = meta.fields_map[column]
    query = (
        connection.query_class.update(meta.basetable)
        .set(Field(meta.fields_db_projection[column]), executor.parameter(0))
        .where(Field(meta.db_pk_column) == executor.parameter(1))
    )
    rows = [[field.to_db_value(value, model), pk] for pk, value in values.items()]
    await connection.execute_many(str(query), rows)
