"""Copies of the services' SQLite files, as `sqlite3 FILE ".backup COPY"` makes them (SQLite's
backup API: the committed pages of the WAL included, where `cp` would miss them). Taken while
nothing writes (`Node.backup` pauses every actor first), the copies are one consistent cut
across the services."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from pathlib import Path

from sagashop.private import private_directory, private_file


def copy_sqlite(files: Mapping[str, str], to: Path) -> list[Path]:
    """Each service's file copied into `to` (made private, as the backups directory above it:
    the books of every player are in them), named as the live one; the copies' paths."""
    private_directory(to.parent)
    private_directory(to)
    copies = []
    for live_path in files.values():
        copy_path = to / Path(live_path).name
        private_file(copy_path)
        live, copy = sqlite3.connect(live_path), sqlite3.connect(copy_path)
        try:
            live.backup(copy)
        finally:
            copy.close()
            live.close()
        copies.append(copy_path)
    return copies
