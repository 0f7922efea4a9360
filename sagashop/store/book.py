"""A batch's rows: what the steps of one batch read and write, as sets.

The saga runtime reads every row a batch's events touch with one statement per table (`Keyed`),
the steps decide on those rows in mailbox order, in plain Python (two purchases by one player in
one batch see each other's effect), and what they changed goes back with one statement per table
and kind of change (`sagashop.store.batch` writes the SQL).

Changes are written so that a decision made on a stale read can never make or lose money or
items: an amount or a count is changed by what was added (`balance = balance + ?`, and never
below zero), any other column only from the value that was read (`state = ? WHERE state = ?`),
and a new row is inserted under the table's unique key. If another writer got there first, the
statement finds fewer rows than it should and the whole batch is rolled back and taken again.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from tortoise import fields
from tortoise.models import Model

Key = tuple[Any, ...]


@dataclass(frozen=True)
class Keyed:
    """A table the steps of a service read and write by a key every event carries: `by` names
    the event's fields, `key` the table's fields they match (its primary key unless given)."""

    model: type[Model]
    by: tuple[str, ...]
    key: tuple[str, ...] = ()
    read: bool = True
    """False for a table the steps only add rows to: a batch does not read it first."""

    @property
    def key_fields(self) -> tuple[str, ...]:
        return self.key or (self.model._meta.pk_attr,)

    @property
    def name(self) -> str:
        return self.model._meta.db_table

    def key_of(self, event: Any) -> Key:
        """The key an event gives this table, canonical."""
        return tuple(
            canonical_uuid(value) if uuid else value
            for uuid, value in zip(
                self._uuids, [getattr(event, name) for name in self.by], strict=True
            )
        )

    def key_in(self, values: dict[str, Any]) -> Key:
        """The key of a row's values."""
        return tuple(
            canonical_uuid(values[name]) if uuid else values[name]
            for uuid, name in zip(self._uuids, self.key_fields, strict=True)
        )

    @cached_property
    def _uuids(self) -> tuple[bool, ...]:
        """Which of the key's fields hold UUIDs (spelt one way: see `canonical_uuid`)."""
        fields_map = self.model._meta.fields_map
        return tuple(isinstance(fields_map[name], fields.UUIDField) for name in self.key_fields)


class Row:
    """One row as the batch sees it: its values now, and what the batch did to it."""

    def __init__(self, table: Keyed, values: dict[str, Any], new: bool) -> None:
        self._table = table
        self._values = values
        self._read = None if new else dict(values)
        """As it was read (None: inserted by this batch)."""
        self._added: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_values"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self) -> str:
        return f"Row({self._table.name}, {self._values})"


@dataclass(frozen=True)
class Change:
    """Rows of one table changed the same way, for one statement: inserted (with all their
    values), or updated (`added` amounts, `changed` columns, guarded as the module says)."""

    table: Keyed
    rows: tuple[Row, ...]
    insert: bool = False
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    stamped: tuple[str, ...] = ()
    """`auto_now` columns, set to the batch's time without a guard."""

    def key(self, row: Row) -> Key:
        return tuple(row._values[name] for name in self.table.key_fields)

    def added_to(self, row: Row) -> list[int]:
        return [row._added[name] for name in self.added]

    def values(self, row: Row, names: Iterable[str]) -> list[Any]:
        return [row._values[name] for name in names]

    def read(self, row: Row, names: Iterable[str]) -> list[Any]:
        assert row._read is not None
        return [row._read[name] for name in names]


class Book:
    """The rows of one batch, and what its steps did to them."""

    def __init__(self, tables: Sequence[Keyed], now: datetime) -> None:
        self.tables = tuple(tables)
        self.now = now
        """The batch's one clock: every time a step writes or compares is this one."""
        self._rows: dict[Keyed, dict[Key, Row]] = {table: {} for table in tables}
        self._touched: dict[int, Row] = {}
        """Rows inserted or changed, in the order it happened (by identity)."""
        self._after_commit: list[Callable[[], None]] = []

    def keep(self, table: Keyed, found: Iterable[dict[str, Any]]) -> None:
        """Rows read for the batch, as Python values."""
        for values in found:
            self._rows[table][table.key_in(values)] = Row(table, values, new=False)

    def get(self, table: Keyed, event: Any) -> Row | None:
        """The row the event names in `table`, if there is one."""
        if not table.read:
            raise ValueError(f"{table.name} is written, not read, by the batch")
        return self._rows[table].get(table.key_of(event))

    def insert(self, table: Keyed, event: Any, **values: Any) -> Row:
        """A new row keyed by the event; the model's defaults fill the columns not given."""
        key = table.key_of(event)
        if key in self._rows[table]:
            raise ValueError(f"{table.name}: a row with key {key} is there already")
        given = dict(zip(table.key_fields, key, strict=True)) | values
        row = Row(table, _with_defaults(table.model, given, self.now), new=True)
        self._rows[table][key] = row
        self._touched[id(row)] = row
        return row

    def add(self, row: Row, **amounts: int) -> None:
        """Add to amounts or counts of the row (negative to take away)."""
        for name, amount in amounts.items():
            if row._values[name] + amount < 0:
                raise ValueError(f"{row._table.name}.{name} would go below zero")
            row._values[name] += amount
            if row._read is not None:
                row._added[name] = row._added.get(name, 0) + amount
        self._touch(row)

    def set(self, row: Row, **values: Any) -> None:
        """Set columns of the row (on the database: only if they still hold what was read)."""
        row._values.update(values)
        self._touch(row)

    def note(self, row: Row, **values: Any) -> None:
        """`set`, as bookkeeping: the row's `auto_now` columns keep what they hold (an order's
        `updated_at` says when its status last changed, not when it was last looked after)."""
        row._values.update(values)
        self._touch(row, stamp=False)

    def after_commit(self, then: Callable[[], None]) -> None:
        """Run `then` once the batch has committed (never if it rolls back)."""
        self._after_commit.append(then)

    def committed(self) -> None:
        for then in self._after_commit:
            then()

    def changes(self) -> list[Change]:
        """What to write, by table (in the declared order) and kind of change."""
        found: list[Change] = []
        for table in self.tables:
            rows = [row for row in self._touched.values() if row._table is table]
            new = tuple(row for row in rows if row._read is None)
            if new:
                found.append(Change(table, new, insert=True))
            stamped = _auto_now(table.model)
            shapes: dict[tuple[tuple[str, ...], tuple[str, ...]], list[Row]] = {}
            for row in rows:
                if row._read is not None:
                    shapes.setdefault(_shape(row, stamped), []).append(row)
            found += [
                Change(table, tuple(same), False, added, changed, stamped)
                for (added, changed), same in shapes.items()
            ]
        return found

    def _touch(self, row: Row, stamp: bool = True) -> None:
        """Keep the row among those to write (once), stamping its `auto_now` columns."""
        if self._rows.get(row._table, {}).get(row._table.key_in(row._values)) is not row:
            raise ValueError(f"{row!r} is not a row of this batch")
        if stamp and row._read is not None:
            for name in _auto_now(row._table.model):
                row._values[name] = self.now
        self._touched[id(row)] = row


def values(row: Row) -> dict[str, Any]:
    """A row's values now, by field name."""
    return dict(row._values)


def _shape(row: Row, stamped: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The columns added to, and the columns set otherwise (but the stamped ones)."""
    assert row._read is not None
    changed = [
        name
        for name, value in row._values.items()
        if name not in row._added and name not in stamped and row._read[name] != value
    ]
    return tuple(sorted(row._added)), tuple(sorted(changed))


def _auto_now(model: type[Model]) -> tuple[str, ...]:
    return tuple(
        name
        for name, field in model._meta.fields_map.items()
        if isinstance(field, fields.DatetimeField) and field.auto_now
    )


def _with_defaults(model: type[Model], given: dict[str, Any], now: datetime) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in model._meta.fields_db_projection:
        field = model._meta.fields_map[name]
        if name in given:
            values[name] = given[name]
        elif isinstance(field, fields.DatetimeField) and (field.auto_now or field.auto_now_add):
            values[name] = now
        elif field.generated:
            continue
        elif field.default is not None:
            values[name] = field.default() if callable(field.default) else field.default
        else:
            values[name] = None
    return values


def canonical_uuid(value: Any) -> str:
    """The one text form of a UUID. Most come in it already (events are read so, rows written
    so), and parsing each again cost more than the rest of a key's work."""
    if isinstance(value, str) and len(value) == 36 and value == value.lower() and value[8] == "-":
        return value
    return str(uuid.UUID(str(value)))
