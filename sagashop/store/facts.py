"""Tables as the audit reads them: named columns, rows of JSON values, sent between processes
as they are and read back by name (see `sagashop.audit`)."""

from __future__ import annotations

from typing import Any, TypedDict

from tortoise.models import Model

from sagashop.store.render import json_value


class Table(TypedDict):
    columns: list[str]
    rows: list[list[Any]]


async def table(model: type[Model], *columns: str) -> Table:
    """Every row of `model`, with the given columns."""
    found = await model.all().values_list(*columns)
    return {"columns": list(columns), "rows": [[json_value(v) for v in row] for row in found]}
