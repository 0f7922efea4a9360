"""The store's errors as the rest of the system sees them: a conflict (take the step again) or
the database being away for a while. Nothing past this edge knows Tortoise's or asyncpg's."""

from __future__ import annotations

from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg
from tortoise.exceptions import DBConnectionError, IntegrityError, OperationalError

T = TypeVar("T")


class StoreConflict(Exception):
    """A unique constraint refused a write: another delivery or process got there first."""


class StoreUnavailable(Exception):
    """The database could not be reached or dropped the connection: it may be back soon."""


_UNAVAILABLE: tuple[type[BaseException], ...] = (
    DBConnectionError,
    OperationalError,
    # asyncpg lets these through untranslated when PostgreSQL drops a connection:
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
)


@asynccontextmanager
async def store_errors() -> AsyncIterator[None]:
    """Raise the store's errors as `StoreConflict` or `StoreUnavailable` (the cause kept)."""
    try:
        yield
    except IntegrityError as error:
        raise StoreConflict(str(error)) from error
    except _UNAVAILABLE as error:
        raise StoreUnavailable(f"{type(error).__name__}: {error}") from error


async def translated(work: Coroutine[Any, Any, T]) -> T:
    async with store_errors():
        return await work
