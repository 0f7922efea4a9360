"""Migrations where processes meet: several starting together on an empty database apply each
migration once, and a process told not to migrate refuses a database that is behind."""

from __future__ import annotations

import asyncio
import importlib
import os
import re
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from sagashop.actors import SERVICE_NAMES
from sagashop.chaos.processes import Child
from sagashop.cli import COMMANDS
from sagashop.config import Settings, child_environment, to_flags
from sagashop.store.schema import migrations_of
from tests.stores import written_before_migrations
from tests.support import with_cluster_on

APPLIED = re.compile(r"(\w+): applied migration (\w+)")


def every_migration() -> Counter[tuple[str, str]]:
    """Each (service, migration) the code has, once."""
    found: Counter[tuple[str, str]] = Counter()
    for service in SERVICE_NAMES:
        package = Path(importlib.import_module(migrations_of(service)).__path__[0])
        found.update((service, path.stem) for path in package.glob("0*.py"))
    return found


@with_cluster_on("sqlite-pubsub", "postgres-pubsub")
async def test_replicas_started_together_on_an_empty_database_apply_each_migration_once(
    cluster_settings: Settings, tmp_path: Path
) -> None:
    children = [Child(name, "all", cluster_settings, tmp_path / f"{name}.log") for name in "abc"]
    try:
        started = await asyncio.gather(
            *(child.start() for child in children), return_exceptions=True
        )
    finally:
        stopped = [await child.stop() for child in children if child.process]

    logs = "\n".join(child.log_text() for child in children)
    assert started == [None, None, None], logs[-6000:]
    assert stopped == [0, 0, 0], logs[-6000:]
    assert Counter(APPLIED.findall(logs)) == every_migration(), logs[-6000:]


@with_cluster_on("sqlite-pubsub", "postgres-pubsub")
async def test_told_not_to_migrate_a_process_refuses_a_database_behind_until_migrated(
    cluster_settings: Settings, tmp_path: Path
) -> None:
    backend = "sqlite" if cluster_settings.database_url is None else "postgres"
    async with written_before_migrations(backend, cluster_settings.data_dir) as url:
        settings = replace(cluster_settings, database_url=url, migrate=False)
        refusing = Child("refusing", "all", settings, tmp_path / "refusing.log")
        with pytest.raises(RuntimeError, match="exited"):
            await refusing.start()
        assert refusing.process is not None
        assert await refusing.process.wait() == 1
        assert "the order database is at no migration and this code needs" in refusing.log_text()
        assert "run `python run.py migrate` first" in refusing.log_text()

        migrating = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "sagashop",
            "migrate",
            *to_flags(settings, COMMANDS["migrate"].settings),
            env=child_environment(settings, os.environ),
        )
        assert await migrating.wait() == 0

        started = Child("started", "all", settings, tmp_path / "started.log")
        await started.start()
        assert await started.stop() == 0
