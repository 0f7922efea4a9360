"""The audit run against a real system, by `GET /audit` and by `python run.py audit`: it passes,
then finds an error planted behind a service's back."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from pathlib import Path

import asyncpg

from sagashop.cli import COMMANDS
from sagashop.config import child_environment, to_flags
from tests.support import Shop, on_systems

# The audit reads each database; the transport only carries its questions.
pytestmark = on_systems("sqlite-pubsub", "postgres-pubsub")


async def run_audit_command(shop: Shop, *how: str, cwd: Path | None = None) -> tuple[int, str]:
    """`run.py audit` in a process of its own: `how` are its flags, after the command."""
    assert shop.node is not None
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sagashop",
        "audit",
        *how,
        env=child_environment(shop.node.settings, os.environ),
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    report, _log = await child.communicate()
    return await child.wait(), report.decode()


async def audit_both_ways(shop: Shop, anywhere: Path) -> list[tuple[int, str]]:
    """Over the system's Redis, as a process beside it; and through its front door
    (`--url`) from another directory, where no Redis or data of the system's is."""
    assert shop.node is not None
    by_redis = await run_audit_command(
        shop, *to_flags(shop.node.settings, COMMANDS["audit"].settings)
    )
    url = str(shop.client.make_url("/"))  # type: ignore[attr-defined]
    by_url = await run_audit_command(shop, "--url", url, cwd=anywhere)
    return [by_redis, by_url]


async def settle_some_purchases(shop: Shop) -> str:
    user = await shop.new_user(balance=5_000)
    item = await shop.new_item(price=2_000, stock=5)
    for quantity in (1, 3, 1):  # done, too dear, done
        await shop.settle((await shop.buy(user, item, quantity))["id"])
    return user


async def give_away_money(shop: Shop, user: str) -> None:
    """Change a balance behind the user service's back, as a bug would."""
    assert shop.node is not None
    url = shop.node.settings.database_url_for("user")
    if url.startswith("sqlite://"):
        with sqlite3.connect(url.removeprefix("sqlite://").split("?")[0]) as db:
            db.execute("UPDATE users SET balance = balance + 1 WHERE id = ?", (user,))
        return
    db = await asyncpg.connect(url)
    try:
        await db.execute("UPDATE users SET balance = balance + 1 WHERE id = $1", user)
    finally:
        await db.close()


async def test_the_audit_of_a_real_system_passes_then_finds_a_planted_error(
    shop: Shop, tmp_path: Path
) -> None:
    user = await settle_some_purchases(shop)

    clean = await shop.ok("GET", "/audit")
    printed = await audit_both_ways(shop, tmp_path)
    assert clean["ok"], clean["violations"]
    assert [(code, text.splitlines()[0][:8]) for code, text in printed] == [(0, "audit ok")] * 2

    await give_away_money(shop, user)
    found = await shop.ok("GET", "/audit")
    printed = await audit_both_ways(shop, tmp_path)

    planted = f"money: user {user}: opening 5000 != balance 1001 + held or used 4000 (off by -1)"
    assert planted in found["violations"]
    for code, text in printed:
        assert code == 1
        assert planted in text
