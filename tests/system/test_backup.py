"""The README's backups of the SQLite files restore a system whose books balance and that goes
on selling: `POST /backups` (`run.py backup`) taken while purchases are under way, and
`sqlite3 FILE ".backup COPY"` (here through Python's sqlite3 backup API, which is what `.backup`
runs) taken once the process stopped.

Six copies made one after another while purchases go on are no consistent cut across the
services (tried: an item held for an order the order file did not have, money captured that the
user file did not show spent); `POST /backups` pauses every service for the copy, so they are."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import stat
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import pytest

import sagashop.bootstrap as bootstrap
from sagashop.actors import SERVICE_NAMES
from sagashop.store.backup import copy_sqlite
from tests.support import Shop, eventually, make_settings, run_command, started_shop


def backup(data: Path, to: Path) -> None:
    """Each service's file, copied page by page, the WAL's committed pages included."""
    to.mkdir(parents=True)
    for service in SERVICE_NAMES:
        live = sqlite3.connect(data / f"{service}.sqlite3")
        copy = sqlite3.connect(to / f"{service}.sqlite3")
        try:
            live.backup(copy)
        finally:
            copy.close()
            live.close()


async def test_a_backup_of_the_stopped_system_restores_one_whose_books_balance(
    redis_url: str, tmp_path: Path
) -> None:
    data, saved = tmp_path / "data", tmp_path / "backup"
    async with started_shop(make_settings(redis_url, data, None)) as shop:
        user, item = await shop.new_user(balance=10_000), await shop.new_item(price=1_000)
        orders = [(await shop.buy(user, item))["id"] for _ in range(3)]
        for order_id in orders:
            await shop.settle(order_id)
    backup(data, saved)

    async with started_shop(make_settings(redis_url, saved, None)) as restored:
        for order_id in orders:
            assert (await restored.order(order_id))["status"] == "COMPLETED"
        report = await restored.ok("GET", "/audit")
        assert report["ok"], report["violations"]
        assert report["counts"]["orders"] == 3
        again = await restored.buy(user, item)
        assert (await restored.settle(again["id"]))["status"] == "COMPLETED"
        assert (await restored.ok("GET", f"/user/{user}/balance"))["balance"] == 6_000


async def test_an_online_backup_under_load_restores_one_whose_books_balance(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Purchases go on throughout, and each file takes a while to copy, as a large one would:
    a copy of one file while steps go on in the others would show."""
    monkeypatch.setattr(bootstrap, "copy_sqlite", _slowly)
    data, restored_data = tmp_path / "data", tmp_path / "restored"
    async with started_shop(make_settings(redis_url, data, None)) as shop:
        users = [await shop.new_user(balance=1_000_000) for _ in range(10)]
        item = await shop.new_item(price=1_000, stock=10_000)
        backed_up = asyncio.Event()
        buyers = [asyncio.create_task(_buy_until(shop, user, item, backed_up)) for user in users]
        await eventually(lambda: _count(shop), lambda placed: placed >= 20)
        taken = await shop.ok("POST", "/backups", expect=201)
        backed_up.set()
        for order_id in [order for bought in await asyncio.gather(*buyers) for order in bought]:
            await shop.settle(order_id)
    saved = Path(taken["path"])
    assert _modes([saved]) == {0o700}
    assert _modes([Path(copy) for copy in taken["files"]]) == {0o600}
    assert sorted(Path(copy).name for copy in taken["files"]) == sorted(
        f"{service}.sqlite3" for service in SERVICE_NAMES
    )

    shutil.copytree(saved, restored_data)
    quick = replace(make_settings(redis_url, restored_data, None), nudge_after=0.2)
    async with started_shop(quick) as restored:
        kept = await restored.every("/orders", "orders")
        assert len(kept) >= 20
        for order in kept:
            assert (await restored.settle(order["id"]))["status"] in {"COMPLETED", "CANCELLED"}
        report = await restored.ok("GET", "/audit")
        assert report["ok"], report["violations"]
        again = await restored.buy(users[0], item)
        assert (await restored.settle(again["id"]))["status"] == "COMPLETED"


def _modes(paths: list[Path]) -> set[int]:
    return {stat.S_IMODE(path.stat().st_mode) for path in paths}


def _slowly(files: Mapping[str, str], to: Path) -> list[Path]:
    copies = []
    for service, path in files.items():
        copies += copy_sqlite({service: path}, to)
        time.sleep(0.2)
    return copies


async def _buy_until(shop: Shop, user: str, item: str, done: asyncio.Event) -> list[str]:
    bought = []
    while not done.is_set():
        bought.append(str((await shop.buy(user, item))["id"]))
    return bought


async def _count(shop: Shop) -> int:
    return len((await shop.ok("GET", "/orders", params={"limit": 50}))["orders"])


async def test_an_online_backup_is_refused_where_it_cannot_be_a_consistent_cut(
    redis_url: str, tmp_path: Path
) -> None:
    split = make_settings(redis_url, tmp_path / "data", None, services=("order", "user"))
    async with started_shop(split) as shop:
        status, error = await shop.call("POST", "/backups")
    assert status == 409
    assert "pg_dump" in error["error"]["message"]


async def test_run_py_backup_asks_the_running_system_and_says_where(
    redis_url: str, tmp_path: Path
) -> None:
    async with started_shop(make_settings(redis_url, tmp_path / "data", None)) as shop:
        await shop.buy(await shop.new_user(), await shop.new_item())
        door = ["--url", str(shop.client.make_url("/"))]  # type: ignore[attr-defined]
        code, printed = await run_command("backup", *door, cwd=tmp_path)
    assert code == 0, printed
    where = Path(printed.split(" to ", 1)[1].split(" (on the server)")[0])
    assert where.parent == tmp_path / "data" / "backups"
    assert _modes([where / f"{service}.sqlite3" for service in SERVICE_NAMES]) == {0o600}
    code, printed = await run_command("backup", "--url", "http://127.0.0.1:9", cwd=tmp_path)
    assert (code, printed.startswith("backup: POST http://127.0.0.1:9/backups")) == (2, True)
