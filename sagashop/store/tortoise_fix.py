"""A fix for Tortoise 1.1.9, applied when the first store opens (`Store.open`)."""

from __future__ import annotations

from typing import Any

from tortoise.backends.base.client import TransactionContextPooled
from tortoise.connection import get_connections

_applied = False


def release_the_connection_when_begin_fails() -> None:
    """Tortoise 1.1.9 acquires a pooled connection, then sends BEGIN; when BEGIN fails (the
    server dropped that connection) the exception leaves `__aenter__`, `__aexit__` never runs,
    and the connection is never given back. Every dropped connection would leak one, until the
    pool is empty and every transaction waits forever. Give it back, then fail as before."""
    global _applied
    if _applied:
        return
    _applied = True
    enter = TransactionContextPooled.__aenter__

    async def __aenter__(self: TransactionContextPooled) -> Any:
        try:
            return await enter(self)
        except BaseException:
            pool, connection = self.client._parent._pool, self.client._connection
            if pool is not None and connection is not None:
                await pool.release(connection)
            if getattr(self, "token", None) is not None:
                get_connections().reset(self.token)
            raise

    TransactionContextPooled.__aenter__ = __aenter__  # type: ignore[method-assign]
