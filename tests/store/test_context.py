"""Every task that touches a database starts in the store's context (`Store.context`): one that
does not fails at its first query, saying what to do, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio

import pytest

from sagashop.store.errors import OutsideTheStore
from sagashop.store.user import User
from tests.store.harness import Steps


async def test_a_query_outside_the_stores_context_fails_at_once_saying_what_to_do(
    steps: Steps,
) -> None:
    with pytest.raises(OutsideTheStore, match=r"context=store.context\(\)"):
        await asyncio.create_task(User.all().count())
    assert await steps.read(lambda: User.all().count()) >= 0, "inside it, the same query works"
