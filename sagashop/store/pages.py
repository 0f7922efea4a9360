"""One page of a list, by keyset: the rows after a position in a fixed order, never more than
a limit, so no list read costs more than a page however long the list grows.

A position is the sort fields' values of the last row a page gave (JSON: times and ids as
text); the next page starts after it, so rows added meanwhile neither shift nor repeat what
a client already has (an offset would). A page reads one row more than it gives, to know
whether a next page exists.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from datetime import datetime
from functools import reduce
from typing import Any, TypeVar
from uuid import UUID

from tortoise import fields
from tortoise.expressions import Q
from tortoise.models import Model
from tortoise.queryset import QuerySet

from sagashop.errors import NotFound

M = TypeVar("M", bound=Model)


def no_page() -> NotFound:
    """A cursor that names no position of this list: no such page (404, naming `cursor`)."""
    return NotFound("no page at this cursor: send the `next` a page gave", "cursor")


Position = list[Any]

PAGE = 50
"""Rows a page has when the caller does not say (the API takes 1 to 200)."""
NEWEST_FIRST = ("-created_at", "-id")
OLDEST_FIRST = ("created_at", "id")
BY_ID = ("id",)


async def page(
    query: QuerySet[M], order: Sequence[str], after: Position | None, limit: int
) -> tuple[list[M], Position | None]:
    """Up to `limit` rows after `after` in `order` (fields, `-` for descending), and the
    position to ask the next page from, or None if this was the last."""
    if after is not None:
        query = query.filter(_beyond(query.model, order, after))
    rows = await query.order_by(*order).limit(limit + 1)
    if len(rows) <= limit:
        return list(rows), None
    return list(rows[:limit]), position_of(rows[limit - 1], order)


def position_of(row: Model, order: Sequence[str]) -> Position:
    values = (getattr(row, name.lstrip("-")) for name in order)
    return [value.isoformat() if isinstance(value, datetime) else str(value) for value in values]


def _beyond(model: type[Model], order: Sequence[str], after: Position) -> Q:
    """Rows that sort after `after`: (a, b) > (x, y) is a > x, or a = x and b > y."""
    if not isinstance(after, list) or len(after) != len(order):
        raise no_page()
    values = [_value(model, name.lstrip("-"), raw) for name, raw in zip(order, after, strict=True)]
    names = [name.lstrip("-") for name in order]
    clauses = [
        Q(**dict(zip(names[:n], values[:n], strict=True)), **{_past(name): values[n]})
        for n, name in enumerate(order)
    ]
    return reduce(operator.or_, clauses)


def _past(name: str) -> str:
    """The lookup for "after" along one sort field: less than, if it sorts descending."""
    return f"{name.lstrip('-')}__{'lt' if name.startswith('-') else 'gt'}"


def _value(model: type[Model], name: str, raw: Any) -> Any:
    """A position's value as its field compares: a time from its text, a UUID checked (a made-up
    one names no page, where PostgreSQL's uuid would refuse it), other ids as given."""
    kind = model._meta.fields_map[name]
    try:
        if isinstance(kind, fields.DatetimeField):
            return datetime.fromisoformat(str(raw))
        if isinstance(kind, fields.IntField | fields.BigIntField):
            return int(raw)
        if isinstance(kind, fields.UUIDField):
            return str(UUID(str(raw)))
        return str(raw)
    except ValueError:
        raise no_page() from None
