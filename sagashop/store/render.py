"""Rows as the API shows them, and the lookups every service's queries share."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any, TypeVar
from uuid import UUID

from tortoise.models import Model

from sagashop.errors import NotFound

M = TypeVar("M", bound=Model)


def now() -> datetime:
    """For `.update()`, which does not touch auto_now fields."""
    return datetime.now(UTC)


async def found(model: type[M], row_id: str, what: str | None = None) -> M:
    """The row with this primary key, or NotFound naming what was looked for (by default as
    the model is named: `Item`, an item)."""
    row = await model.get_or_none(pk=row_id)
    if row is None:
        raise NotFound(f"no {what or model.__name__.lower()} with id {row_id}")
    return row


def as_json(row: Model, *skip: str) -> dict[str, Any]:
    """A row as the API shows it: camelCase keys, ids and times as text."""
    return shown(type(row), {name: getattr(row, name) for name in row._meta.fields_map}, *skip)


def shown(model: type[Model], values: Mapping[str, Any], *skip: str) -> dict[str, Any]:
    """A row's values (by field name) as the API shows them; see `as_json`."""
    return {camel: json_value(values[name]) for name, camel in _names_shown(model, skip)}


@cache
def _names_shown(model: type[Model], skip: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """Each field shown, with its camelCase name: made once, as every read of an order shows
    one (clients that poll read it several times a purchase)."""
    return tuple((name, _camel(name)) for name in model._meta.fields_map if name not in skip)


def json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    return value


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(word.title() for word in rest)
