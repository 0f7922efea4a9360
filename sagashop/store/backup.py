"""Copies of the services' SQLite files, as `sqlite3 FILE ".backup COPY"` makes them (SQLite's
backup API: the committed pages of the WAL included, where `cp` would miss them). Taken while
nothing writes (`Node.backup` pauses every actor first), the copies are one consistent cut
across the services."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping
from pathlib import Path


def copy_sqlite(files: Mapping[str, str], to: Path) -> list[Path]:
    """Each service's file copied into `to` (made, mode 0700; each copy 0600: the books of every
    player are in them), named as the live one; the copies' paths."""
    to.mkdir(mode=0o700, parents=True, exist_ok=True)
    copies = []
    for live_path in files.values():
        copy_path = to / Path(live_path).name
        os.close(os.open(copy_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        live, copy = sqlite3.connect(live_path), sqlite3.connect(copy_path)
        try:
            live.backup(copy)
        finally:
            copy.close()
            live.close()
        copies.append(copy_path)
    return copies
