"""Writing many rows with one statement each way, which Tortoise's `bulk_create` and `update`
do not offer: a multi-row INSERT that skips rows already there and says which it wrote, and
one UPDATE run for many rows (`executemany`).

These run on the saga's hot path, several times per step, so each statement's text is built
once per shape by Tortoise's own query builder and kept: building it anew cost more than
running it (see docs/performance.md)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pypika_tortoise.terms import Field
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.models import Model

_texts: dict[tuple[Any, ...], str] = {}


def _text(shape: tuple[Any, ...], build: Callable[[], Any]) -> str:
    """The SQL for `shape` (which names the dialect, the model and all else it depends on)."""
    text = _texts.get(shape)
    if text is None:
        text = _texts[shape] = str(build())
    return text


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
    fields = [(name, meta.fields_map[name]) for name in columns]

    def build() -> Any:
        query = connection.query_class.into(meta.basetable).columns(
            *(meta.fields_db_projection[name] for name in columns)
        )
        for n in range(len(rows)):
            first = n * len(columns)
            query = query.insert(*(executor.parameter(first + i) for i in range(len(columns))))
        query = query.on_conflict().do_nothing()
        columns_back = (meta.fields_db_projection[name] for name in returning)
        return query.returning(*columns_back)  # type: ignore[operator]  # typed as a Field

    text = _text((type(connection), model, len(rows), tuple(returning)), build)
    values = [field.to_db_value(getattr(row, name), row) for row in rows for name, field in fields]
    return await connection.execute_query_dict(text, values)


async def insert_once(row: Model) -> bool:
    """INSERT the row unless a unique constraint says it is there already; whether it was
    written (one statement either way, and no exception to roll back from)."""
    meta = type(row)._meta
    return bool(await insert_new(meta.db, [row], (meta.pk_attr,)))


async def update_each(
    connection: BaseDBAsyncClient, model: type[Model], column: str, values: Mapping[Any, Any]
) -> None:
    """Set `column` of each row (by primary key) to its value: one statement, many rows."""
    if not values:
        return
    meta = model._meta

    def build() -> Any:
        executor = connection.executor_class(model=model, db=connection)
        return (
            connection.query_class.update(meta.basetable)
            .set(Field(meta.fields_db_projection[column]), executor.parameter(0))
            .where(Field(meta.db_pk_column) == executor.parameter(1))
        )

    text = _text((type(connection), model, "update", column), build)
    field = meta.fields_map[column]
    await connection.execute_many(
        text, [[field.to_db_value(v, model), pk] for pk, v in values.items()]
    )
