"""The files that hold every player's books and the bus' secret are the user's alone: the data
directory 0700 and each file in it 0600, whatever the umask. SQLite makes a database's WAL and
shared-memory files with the database file's own mode, so a private database file is enough for
those; what a release before left readable is made private again at start."""

from __future__ import annotations

import os
import stat
from pathlib import Path

DIRECTORY_MODE = 0o700
FILE_MODE = 0o600
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def private_directory(path: Path) -> Path:
    """`path` made (its parents too) or found, and made 0700."""
    path.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    path.chmod(DIRECTORY_MODE)
    return path


def private_file(path: Path) -> Path:
    """`path` made empty if there is none, and made 0600 (never readable for a moment)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE))
    path.chmod(FILE_MODE)
    return path


def private_sqlite(path: Path) -> None:
    """A SQLite database file, its directory and whatever companions it has, made private
    before SQLite opens it (an empty file is a new database to SQLite)."""
    private_directory(path.parent)
    private_file(path)
    for suffix in SQLITE_COMPANIONS:
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            companion.chmod(FILE_MODE)


def private_tree(root: Path) -> None:
    """Every directory (0700) and regular file (0600) under `root`, itself included: what a
    release before left readable (a data directory 0755, databases 0644)."""
    for path in [root, *root.rglob("*")]:
        mode = path.lstat().st_mode
        if stat.S_ISDIR(mode):
            path.chmod(DIRECTORY_MODE)
        elif stat.S_ISREG(mode):
            path.chmod(FILE_MODE)
