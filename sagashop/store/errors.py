"""The store's errors as the rest of the system sees them: a conflict (take the step again) or
the database being away for a while. Nothing past this edge knows Tortoise's, asyncpg's or
sqlite3's."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

import asyncpg
from tortoise.exceptions import DBConnectionError, IntegrityError, OperationalError

from sagashop.errors import CallerError, SagashopError, Unavailable

T = TypeVar("T")


class StoreConflict(SagashopError):
    """Another writer got there first: a unique constraint refused a write, or rows changed
    since a batch read them. Taken again, the step sees what the other did."""


class OutsideTheStore(SagashopError, RuntimeError):
    """A query was made outside the store's context: a bug in whoever started the task."""


class StoreUnavailable(SagashopError):
    """The database could not be reached or dropped the connection: it may be back soon."""

    def answer(self) -> CallerError:
        return Unavailable("a service cannot reach its database; try again shortly")


_CONFLICTS: tuple[type[BaseException], ...] = (
    IntegrityError,
    sqlite3.IntegrityError,
    # raised as they are by the batches, which run on asyncpg's own connection:
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
)
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    DBConnectionError,
    OperationalError,
    sqlite3.OperationalError,  # "database is locked" past the busy timeout, among others
    # asyncpg lets these through untranslated when PostgreSQL drops a connection:
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    asyncpg.exceptions.ObjectNotInPrerequisiteStateError,  # "not currently accepting connections"
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    # the socket's own, when PostgreSQL is down or the link cut (asyncpg's connect raises
    # ConnectionRefusedError as it is), and a read or a connect timing out:
    OSError,
)


@asynccontextmanager
async def store_errors() -> AsyncIterator[None]:
    """Raise the store's errors as `StoreConflict` or `StoreUnavailable` (the cause kept)."""
    with store_errors_here():
        yield


@contextmanager
def store_errors_here() -> Iterator[None]:
    """`store_errors`, for work done on a thread of its own (no await)."""
    try:
        yield
    except (*_CONFLICTS, *_UNAVAILABLE) as error:
        raise _translation(error) from error


async def translated(work: Coroutine[Any, Any, T]) -> T:
    """`store_errors` around one coroutine, without a context manager's cost (every query a
    client sends goes through here)."""
    try:
        return await work
    except (*_CONFLICTS, *_UNAVAILABLE) as error:
        raise _translation(error) from error


def _translation(error: BaseException) -> Exception:
    if isinstance(error, _CONFLICTS):
        return StoreConflict(str(error))
    return StoreUnavailable(f"{type(error).__name__}: {error}")
