"""Another user of the machine reads nothing: the data directory is 0700 and every file in it
0600 (the SQLite files, their WAL and shared memory, the Redis log, the bus key, the backups),
whatever the umask, and a directory a release before left readable is made private at start.

`python -m sagashop` as `run.py` runs it (its embedded Redis in the data directory), under the
usual umask 022."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from tests.cluster.processes import run_process
from tests.support import Shop, make_settings


async def test_the_data_directory_is_private_whatever_the_umask(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = replace(make_settings("unused", data, None), redis_url=None)
    with umask(0o022):
        async with run_process("shop", "all", settings, tmp_path) as shop:
            await _buy_and_back_up(shop.shop)
            assert _readable_by_others(data) == [], "while it runs"
            assert {p.name for p in data.iterdir()} >= {"user.sqlite3", "user.sqlite3-wal"}

        _as_a_release_before_left_it(data)
        async with run_process("shop", "all", settings, tmp_path) as shop:
            assert _readable_by_others(data) == [], "at start, what was left readable"
            await _buy_and_back_up(shop.shop)
            assert _readable_by_others(data) == []


async def _buy_and_back_up(shop: Shop) -> None:
    await shop.settle((await shop.buy(await shop.new_user(), await shop.new_item()))["id"])
    await shop.ok("POST", "/backups", expect=201)


def _readable_by_others(data: Path) -> list[str]:
    """Every path under `data` (itself included) that a user other than the owner can reach."""
    loose = []
    for path in [data, *data.rglob("*")]:
        mode = path.lstat().st_mode
        wanted = 0o700 if stat.S_ISDIR(mode) or stat.S_ISSOCK(mode) else 0o600
        if stat.S_IMODE(mode) & 0o077 or stat.S_IMODE(mode) & ~wanted:
            loose.append(f"{path.relative_to(data.parent)} {stat.S_IMODE(mode):o}")
    return loose


def _as_a_release_before_left_it(data: Path) -> None:
    for path in [data, *data.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


@contextmanager
def umask(mask: int) -> Iterator[None]:
    """The process's umask, and so its children's."""
    before = os.umask(mask)
    try:
        yield
    finally:
        os.umask(before)
