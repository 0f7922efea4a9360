"""A batch of steps as SQL: the statements it runs, and how its one transaction runs.

A batch's transaction is written once, as a script: a generator that yields each `Statement`
and is sent back what the database answered (rows, or how many rows a write changed). Where the
script runs decides the cost of a statement: on SQLite the whole transaction is one call on the
database connection's own thread (the connection's lock held, nothing else interleaved), not a
hand-off per statement; on PostgreSQL each statement is one await on the loop.

The text of each statement is built once per shape and dialect (`Sql`) and kept. On PostgreSQL
a statement takes a set as arrays (`= ANY($1)`, `unnest`), so its text is one whatever the
batch's size, and the rows a batch reads are locked (`FOR UPDATE`, in key order, so that two
replicas serialise and never deadlock); on SQLite the batch holds the database's write lock
from its first statement (`BEGIN IMMEDIATE`).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, TypeVar

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.connection import get_connection
from tortoise.fields import BooleanField, DatetimeField, JSONField, UUIDField
from tortoise.fields.data import JSON_DUMPS, CharEnumFieldInstance
from tortoise.models import Model
from tortoise.transactions import in_transaction

from sagashop.store.book import Book, Change, Key, Keyed
from sagashop.store.errors import StoreConflict

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Statement:
    text: str
    params: Sequence[Any]
    many: bool = False
    """`params` is a list of parameter lists: the statement runs once for each."""
    counted: bool = False
    """It answers how many rows it changed, not the rows."""


Script = Generator[Statement, Any, T]


async def run(service: str, script: Callable[[Sql], Script[T]]) -> T:
    """Run a script in one transaction on the service's database (call in the store's
    context); what it returns. Any error rolls the whole of it back."""
    client = get_connection(service)
    if client.capabilities.dialect == "postgres":
        return await _on_postgres(service, script(POSTGRES))
    return await _on_sqlite(client, script(SQLITE))


def load(sql: Sql, book: Book, events: Iterable[Any]) -> Script[None]:
    """Read every row the events name, one statement per table."""
    events = list(events)
    for table in (table for table in book.tables if table.read):
        keys = sorted({table.key_of(event) for event in events})
        if keys:
            found = yield sql.select(table, keys)
            book.keep(table, [python_values(table.model, row) for row in found])


def save(sql: Sql, book: Book) -> Script[None]:
    """Write what the steps changed, one statement per table and kind of change; a guarded
    update that finds fewer rows than it changed means another writer got there first."""
    for change in book.changes():
        done = yield sql.write(change)
        if not change.insert and done != len(change.rows):
            raise StoreConflict(
                f"{change.table.name}: {len(change.rows) - done} of {len(change.rows)} rows "
                "changed since they were read"
            )


class Database:
    """One service's database outside Tortoise's connection, for what must be cheap.

    Reads by key (`lookup`, the reads of one thing a client follows): on a SQLite file through
    a read-only connection of its own, used right on the loop (a read by key takes microseconds,
    and in WAL mode it never waits for a writer), so it neither hops to the database
    connection's thread nor waits behind a batch holding that connection; elsewhere through
    the service's Tortoise connection (PostgreSQL's pool).

    Batches taken where they are (`run_here`): on a SQLite file, a service's actor takes its
    batch on its own thread, through a connection of that thread, with no hand-off at all
    (`here` says whether it can)."""

    def __init__(self, service: str, sqlite_file: str | None = None) -> None:
        self.service = service
        self._file = sqlite_file
        self._reader: sqlite3.Connection | None = None
        self._writers = threading.local()

    @property
    def here(self) -> bool:
        return self._file is not None

    @property
    def sqlite_file(self) -> str | None:
        """The service's SQLite file, if that is where its tables are."""
        return self._file

    async def lookup(
        self, table: Keyed, key: Key, columns: tuple[str, ...] | None = None
    ) -> dict[str, Any] | None:
        """One row (`columns` of it, or all), or None."""
        model, names = table.model, columns or _fields(table.model)
        params = _dbs(model, table.key_fields, key)
        rows: Sequence[Any]
        if self._file is not None:
            text = _sqlite_lookup(model, table.key_fields, names)
            _logged(Statement(text, params))
            rows = self._read().execute(text, params).fetchall()
        else:
            client = get_connection(self.service)
            postgres = client.capabilities.dialect == "postgres"
            text = (_postgres_lookup if postgres else _sqlite_lookup)(
                model, table.key_fields, names
            )
            _, rows = await client.execute_query(text, params)
        return python_values(model, rows[0], names) if rows else None

    async def lookup_all(
        self, table: Keyed, keys: Sequence[Key], columns: tuple[str, ...] | None = None
    ) -> list[dict[str, Any]]:
        """The rows with these keys (of a one-column key), as `lookup` reads one."""
        (name,) = table.key_fields
        model, names = table.model, columns or _fields(table.model)
        rows: Sequence[Any]
        if self._file is not None:
            statement = Statement(
                _sqlite_select(model, (name,), len(keys), names),
                [_db(model, name, k) for (k,) in keys],
            )
            _logged(statement)
            rows = self._read().execute(statement.text, statement.params).fetchall()
        else:
            client = get_connection(self.service)
            if client.capabilities.dialect == "postgres":
                text = _postgres_lookup_all(model, name, names)
                params: list[Any] = [[_db(model, name, k) for (k,) in keys]]
            else:
                text = _sqlite_select(model, (name,), len(keys), names)
                params = [_db(model, name, k) for (k,) in keys]
            _, rows = await client.execute_query(text, params)
        return [python_values(model, row, names) for row in rows]

    def run_here(self, script: Callable[[Sql], Script[T]]) -> T:
        """`run`, on the calling thread, through its own connection to the SQLite file."""
        return _sqlite_transaction(self._write(), script(SQLITE))

    def close(self) -> None:
        """Close the read connection (a thread's own one closes with `close_here`)."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def close_here(self) -> None:
        """Close the calling thread's connection, if it opened one."""
        if (db := getattr(self._writers, "db", None)) is not None:
            db.close()
            self._writers.db = None

    def _read(self) -> sqlite3.Connection:
        """Opened at the first read (the file exists by then: the store made its tables)."""
        if self._reader is None:
            uri = f"file:{self._file}?mode=ro"
            self._reader = sqlite3.connect(uri, uri=True, timeout=1.0, isolation_level=None)
        return self._reader

    def _write(self) -> sqlite3.Connection:
        if (db := getattr(self._writers, "db", None)) is None:
            db = sqlite3.connect(str(self._file), timeout=BUSY_SECONDS, isolation_level=None)
            for pragma in SQLITE_WRITER_PRAGMAS:
                db.execute(f"PRAGMA {pragma}")
            self._writers.db = db
        return db


BUSY_SECONDS = 10.0
SQLITE_WRITER_PRAGMAS = ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON")
"""As Tortoise's connection to the same file has them (`SQLITE_PRAGMAS`, and its defaults)."""


def python_values(
    model: type[Model], row: Any, columns: tuple[str, ...] | None = None
) -> dict[str, Any]:
    """A row as read by `Sql.select` (of `columns`, or all), as Python values (UUIDs as text)."""
    names = columns or _fields(model)
    readers = _readers(model, names)
    return {name: read(raw) for name, read, raw in zip(names, readers, row, strict=True)}


def python_value(model: type[Model], name: str, raw: Any) -> Any:
    """One column's value as read, as Python (a UUID as its text)."""
    return _reader(model, name)(raw)


class Sql(ABC):
    """The statements of a batch, for one dialect."""

    @abstractmethod
    def select(
        self, table: Keyed, keys: Sequence[Key], columns: tuple[str, ...] | None = None
    ) -> Statement:
        """The rows with these keys (locked until the batch commits): `columns`, or all."""

    @abstractmethod
    def write(self, change: Change) -> Statement:
        """The rows of a change, inserted or updated as `sagashop.store.book` says."""

    @abstractmethod
    def insert_returning(
        self,
        model: type[Model],
        rows: Sequence[Mapping[str, Any]],
        returning: tuple[str, ...],
    ) -> Statement:
        """Several new rows (all with the same columns) in one statement, answering the
        `returning` columns of each."""

    def upsert(
        self,
        model: type[Model],
        values: Mapping[str, Any],
        conflict: tuple[str, ...],
        update: Mapping[str, str],
    ) -> Statement:
        """One new row; or, where one with the same `conflict` columns is there, that one
        changed by `update` (column -> `excluded` for the new row's value, else an SQL
        expression over the row's own columns)."""
        columns = tuple(values)
        sets = ", ".join(
            f"{_q(model, name)} = "
            + (
                f"excluded.{_q(model, name)}"
                if how == "excluded"
                else how.format(row=_table(model))
            )
            for name, how in update.items()
        )
        keys = ", ".join(_q(model, name) for name in conflict)
        text = f"{self._insert(model, columns)} ON CONFLICT ({keys}) DO UPDATE SET {sets}"
        return Statement(text, _dbs(model, columns, list(values.values())))

    @abstractmethod
    def _insert(self, model: type[Model], columns: tuple[str, ...]) -> str:
        """INSERT of one row with these columns."""


class _Sqlite(Sql):
    def select(
        self, table: Keyed, keys: Sequence[Key], columns: tuple[str, ...] | None = None
    ) -> Statement:
        model, key = table.model, table.key_fields
        text = _sqlite_select(model, key, len(keys), columns or _fields(model))
        return Statement(text, [value for k in keys for value in _dbs(model, key, k)])

    def write(self, change: Change) -> Statement:
        model, table = change.table.model, change.table
        if change.insert:
            columns = _inserted(model)
            rows = [_dbs(model, columns, change.values(row, columns)) for row in change.rows]
            return Statement(self._insert(model, columns), rows, many=True)
        text = _sqlite_update(model, table.key_fields, change.added, change.changed, change.stamped)
        rows = [_sqlite_update_params(change, row) for row in change.rows]
        return Statement(text, rows, many=True, counted=True)

    def insert_returning(
        self,
        model: type[Model],
        rows: Sequence[Mapping[str, Any]],
        returning: tuple[str, ...],
    ) -> Statement:
        columns = tuple(rows[0])
        text = _sqlite_insert_returning(model, columns, len(rows), returning)
        return Statement(
            text, [v for row in rows for v in _dbs(model, columns, list(row.values()))]
        )

    def _insert(self, model: type[Model], columns: tuple[str, ...]) -> str:
        return _sqlite_insert(model, columns)


@cache
def _sqlite_select(
    model: type[Model], key: tuple[str, ...], count: int, columns: tuple[str, ...]
) -> str:
    if len(key) == 1:
        where = f"{_q(model, key[0])} IN ({_marks(count)})"
    else:
        tuples = ", ".join(f"({_marks(len(key))})" for _ in range(count))
        where = f"({', '.join(_q(model, k) for k in key)}) IN (VALUES {tuples})"
    return f"SELECT {_columns(model, columns)} FROM {_table(model)} WHERE {where}"


@cache
def _sqlite_lookup(model: type[Model], key: tuple[str, ...], columns: tuple[str, ...]) -> str:
    return _sqlite_select(model, key, 1, columns)


@cache
def _sqlite_insert(model: type[Model], columns: tuple[str, ...]) -> str:
    names = ", ".join(_q(model, name) for name in columns)
    return f"INSERT INTO {_table(model)} ({names}) VALUES ({_marks(len(columns))})"


@cache
def _sqlite_insert_returning(
    model: type[Model],
    columns: tuple[str, ...],
    count: int,
    returning: tuple[str, ...],
) -> str:
    rows = ", ".join(f"({_marks(len(columns))})" for _ in range(count))
    names = ", ".join(_q(model, name) for name in columns)
    back = ", ".join(_q(model, name) for name in returning)
    return f"INSERT INTO {_table(model)} ({names}) VALUES {rows} RETURNING {back}"


@cache
def _sqlite_update(
    model: type[Model],
    key: tuple[str, ...],
    added: tuple[str, ...],
    changed: tuple[str, ...],
    stamped: tuple[str, ...],
) -> str:
    sets = [f"{_q(model, n)} = {_q(model, n)} + ?" for n in added]
    sets += [f"{_q(model, n)} = ?" for n in (*changed, *stamped)]
    where = [f"{_q(model, n)} = ?" for n in key]
    where += [f"{_q(model, n)} + ? >= 0" for n in added]
    where += [f"{_q(model, n)} IS ?" for n in changed]
    return f"UPDATE {_table(model)} SET {', '.join(sets)} WHERE {' AND '.join(where)}"


def _sqlite_update_params(change: Change, row: Any) -> list[Any]:
    model, written = change.table.model, change.changed + change.stamped
    added = change.added_to(row)
    return [
        *added,
        *_dbs(model, written, change.values(row, written)),
        *_dbs(model, change.table.key_fields, change.key(row)),
        *added,
        *_dbs(model, change.changed, change.read(row, change.changed)),
    ]


class _Postgres(Sql):
    def select(
        self, table: Keyed, keys: Sequence[Key], columns: tuple[str, ...] | None = None
    ) -> Statement:
        model, key = table.model, table.key_fields
        text = _postgres_select(model, key, columns or _fields(model))
        return Statement(text, _arrays(model, key, keys))

    def write(self, change: Change) -> Statement:
        model, table = change.table.model, change.table
        if change.insert:
            columns = _inserted(model)
            rows = [_dbs(model, columns, change.values(row, columns)) for row in change.rows]
            return Statement(self._insert(model, columns), rows, many=True)
        key, added, changed = table.key_fields, change.added, change.changed
        written = changed + change.stamped
        arrays = [
            *_arrays(model, key, [change.key(row) for row in change.rows]),
            *zip(*(change.added_to(row) for row in change.rows), strict=True),
            *_arrays(model, written, [change.values(row, written) for row in change.rows]),
            *_arrays(model, changed, [change.read(row, changed) for row in change.rows]),
        ]
        text = _postgres_update(model, key, added, changed, change.stamped)
        return Statement(text, [list(array) for array in arrays], counted=True)

    def insert_returning(
        self,
        model: type[Model],
        rows: Sequence[Mapping[str, Any]],
        returning: tuple[str, ...],
    ) -> Statement:
        columns = tuple(rows[0])
        text = _postgres_insert_returning(model, columns, returning)
        return Statement(text, _arrays(model, columns, [list(row.values()) for row in rows]))

    def _insert(self, model: type[Model], columns: tuple[str, ...]) -> str:
        return _postgres_insert(model, columns)


@cache
def _postgres_select(model: type[Model], key: tuple[str, ...], columns: tuple[str, ...]) -> str:
    order = ", ".join(_q(model, k) for k in key)
    if len(key) == 1:
        where = f"{_q(model, key[0])} = ANY($1::{_pg_type(model, key[0])}[])"
    else:
        arrays = ", ".join(f"${n}::{_pg_type(model, k)}[]" for n, k in enumerate(key, start=1))
        where = f"({order}) IN (SELECT * FROM unnest({arrays}))"
    return (
        f"SELECT {_columns(model, columns)} FROM {_table(model)} WHERE {where} "
        f"ORDER BY {order} FOR UPDATE"
    )


@cache
def _postgres_lookup(model: type[Model], key: tuple[str, ...], columns: tuple[str, ...]) -> str:
    where = " AND ".join(f"{_q(model, k)} = ${n}" for n, k in enumerate(key, start=1))
    return f"SELECT {_columns(model, columns)} FROM {_table(model)} WHERE {where}"


@cache
def _postgres_lookup_all(model: type[Model], key: str, columns: tuple[str, ...]) -> str:
    where = f"{_q(model, key)} = ANY($1::{_pg_type(model, key)}[])"
    return f"SELECT {_columns(model, columns)} FROM {_table(model)} WHERE {where}"


async def set_where(
    service: str, model: type[Model], column: str, value: Any, ids: Sequence[Any]
) -> None:
    """Set one column of the rows with these primary keys, outside any batch (the relay marks
    what it published so), through the service's Tortoise connection; its SQL built once."""
    client = get_connection(service)
    pk = model._meta.pk_attr
    if client.capabilities.dialect == "postgres":
        text = _postgres_set_where(model, column, pk)
        params: list[Any] = [_db(model, column, value), [_db(model, pk, i) for i in ids]]
    else:
        text = _sqlite_set_where(model, column, pk, len(ids))
        params = [_db(model, column, value), *(_db(model, pk, i) for i in ids)]
    await client.execute_query(text, params)


@cache
def _postgres_set_where(model: type[Model], column: str, pk: str) -> str:
    where = f"{_q(model, pk)} = ANY($2::{_pg_type(model, pk)}[])"
    return f"UPDATE {_table(model)} SET {_q(model, column)} = $1 WHERE {where}"


@cache
def _sqlite_set_where(model: type[Model], column: str, pk: str, count: int) -> str:
    where = f"{_q(model, pk)} IN ({_marks(count)})"
    return f"UPDATE {_table(model)} SET {_q(model, column)} = ? WHERE {where}"


@cache
def _postgres_insert(model: type[Model], columns: tuple[str, ...]) -> str:
    names = ", ".join(_q(model, name) for name in columns)
    marks = ", ".join(f"${n}" for n in range(1, len(columns) + 1))
    return f"INSERT INTO {_table(model)} ({names}) VALUES ({marks})"


@cache
def _postgres_insert_returning(
    model: type[Model], columns: tuple[str, ...], returning: tuple[str, ...]
) -> str:
    names = ", ".join(_q(model, name) for name in columns)
    arrays = ", ".join(f"${n}::{_pg_type(model, c)}[]" for n, c in enumerate(columns, start=1))
    back = ", ".join(_q(model, name) for name in returning)
    return f"INSERT INTO {_table(model)} ({names}) SELECT * FROM unnest({arrays}) RETURNING {back}"


@cache
def _postgres_update(
    model: type[Model],
    key: tuple[str, ...],
    added: tuple[str, ...],
    changed: tuple[str, ...],
    stamped: tuple[str, ...],
) -> str:
    given = [*key, *added, *changed, *stamped]
    names = [*given, *(f"{n}__read" for n in changed)]
    types = [_pg_type(model, n) for n in given] + [_pg_type(model, n) for n in changed]
    arrays = ", ".join(f"${n}::{kind}[]" for n, kind in enumerate(types, start=1))
    sets = [f'{_q(model, n)} = t.{_q(model, n)} + v."{n}"' for n in added]
    sets += [f'{_q(model, n)} = v."{n}"' for n in (*changed, *stamped)]
    where = [f't.{_q(model, n)} = v."{n}"' for n in key]
    where += [f't.{_q(model, n)} + v."{n}" >= 0' for n in added]
    where += [f't.{_q(model, n)} IS NOT DISTINCT FROM v."{n}__read"' for n in changed]
    alias = ", ".join(f'"{n}"' for n in names)
    return (
        f"UPDATE {_table(model)} AS t SET {', '.join(sets)} FROM unnest({arrays}) AS v({alias}) "
        f"WHERE {' AND '.join(where)} RETURNING 1"
    )


SQLITE: Sql = _Sqlite()
POSTGRES: Sql = _Postgres()


async def _on_sqlite(client: BaseDBAsyncClient, script: Script[T]) -> T:
    async with client.acquire_connection() as connection:
        # aiosqlite runs what it is given on the connection's own thread: the whole script, once.
        return await connection._execute(_sqlite_transaction, connection._conn, script)  # type: ignore[no-any-return]


def _sqlite_transaction(db: sqlite3.Connection, script: Script[T]) -> T:
    db.execute("BEGIN IMMEDIATE")
    try:
        answer = None
        while True:
            try:
                statement = script.send(answer)
            except StopIteration as ended:
                db.execute("COMMIT")
                return ended.value  # type: ignore[no-any-return]
            answer = _sqlite_answer(db, statement)
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _sqlite_answer(db: sqlite3.Connection, statement: Statement) -> Any:
    _logged(statement)
    if statement.many:
        return db.executemany(statement.text, statement.params).rowcount
    cursor = db.execute(statement.text, statement.params)
    return cursor.rowcount if statement.counted else cursor.fetchall()


async def _on_postgres(service: str, script: Script[T]) -> T:
    async with in_transaction(service) as transaction:
        connection = transaction._connection  # asyncpg's own: arrays and executemany as they are
        answer = None
        while True:
            try:
                statement = script.send(answer)
            except StopIteration as ended:
                return ended.value  # type: ignore[no-any-return]
            answer = await _postgres_answer(connection, statement)


async def _postgres_answer(connection: Any, statement: Statement) -> Any:
    _logged(statement)
    if statement.many:
        await connection.executemany(statement.text, statement.params)
        return len(statement.params)
    rows = await connection.fetch(statement.text, *statement.params)
    return len(rows) if statement.counted else rows


def _logged(statement: Statement) -> None:
    """Each statement at DEBUG, as Tortoise logs its own (`sagashop.bench.saga_cost` counts
    them)."""
    if log.isEnabledFor(logging.DEBUG):
        log.debug("%s: %d sets of parameters", statement.text, len(statement.params))


def _db(model: type[Model], name: str, value: Any) -> Any:
    return _writer(model, name)(value)


@cache
def _writer(model: type[Model], name: str) -> Callable[[Any], Any]:
    """How a field's Python value goes to the database, as Tortoise writes it (its own
    `to_db_value` validates and converts anew each time: a twelfth of a batch's cost)."""
    field = model._meta.fields_map[name]
    if isinstance(field, UUIDField):
        return _optional(str)
    if isinstance(field, CharEnumFieldInstance):
        enum = field.enum_type
        return _optional(lambda value: enum(value).value)
    if isinstance(field, JSONField):
        return _optional(_COMPACT_JSON if field.encoder is JSON_DUMPS else field.encoder)
    return _same


@cache
def _reader(model: type[Model], name: str) -> Callable[[Any], Any]:
    """How a column's value comes back as Python (UUIDs as their text)."""
    field = model._meta.fields_map[name]
    if isinstance(field, UUIDField):
        return _optional(str)
    if isinstance(field, DatetimeField):
        return _optional(_moment)
    if isinstance(field, CharEnumFieldInstance):
        return _optional(field.enum_type)
    if isinstance(field, JSONField):
        return _optional(
            lambda value: field.decoder(value) if isinstance(value, str | bytes) else value
        )
    if isinstance(field, BooleanField):
        return _optional(bool)
    return _same


def _moment(value: Any) -> datetime:
    """A time as SQLite keeps it (text, as Python's adapter writes it) or PostgreSQL gives it."""
    found = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return found if found.tzinfo is not None else found.replace(tzinfo=UTC)


def _optional(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else convert(value)


_COMPACT_JSON = json.JSONEncoder(separators=(",", ":")).encode
"""What Tortoise's default `JSON_DUMPS` writes, with its encoder made once rather than per call
(`json.dumps` makes a new one whenever it is given options)."""


def _same(value: Any) -> Any:
    return value


def _dbs(model: type[Model], names: Sequence[str], values: Sequence[Any]) -> list[Any]:
    writers = _writers(model, tuple(names))
    return [write(value) for write, value in zip(writers, values, strict=True)]


@cache
def _writers(model: type[Model], names: tuple[str, ...]) -> tuple[Callable[[Any], Any], ...]:
    return tuple(_writer(model, name) for name in names)


@cache
def _readers(model: type[Model], names: tuple[str, ...]) -> tuple[Callable[[Any], Any], ...]:
    return tuple(_reader(model, name) for name in names)


def _arrays(
    model: type[Model], names: Sequence[str], rows: Sequence[Sequence[Any]]
) -> list[list[Any]]:
    """One array per column, of the rows' values as the database takes them."""
    return [[_db(model, name, row[n]) for row in rows] for n, name in enumerate(names)]


@cache
def _fields(model: type[Model]) -> tuple[str, ...]:
    """Every column's field, in the model's order (the order `select` reads them in)."""
    return tuple(model._meta.fields_db_projection)


@cache
def _inserted(model: type[Model]) -> tuple[str, ...]:
    fields = model._meta.fields_map
    return tuple(name for name in _fields(model) if not fields[name].generated)


def _q(model: type[Model], name: str) -> str:
    return f'"{model._meta.fields_db_projection[name]}"'


def _table(model: type[Model]) -> str:
    return f'"{model._meta.db_table}"'


def _columns(model: type[Model], names: Sequence[str]) -> str:
    return ", ".join(_q(model, name) for name in names)


def _marks(count: int) -> str:
    return ", ".join("?" for _ in range(count))


@cache
def _pg_type(model: type[Model], name: str) -> str:
    kind = str(model._meta.fields_map[name].get_for_dialect("postgres", "SQL_TYPE"))
    return {"BIGSERIAL": "BIGINT", "SERIAL": "INT"}.get(kind, kind)
