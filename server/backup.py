"""`pcg backup`: a consistent copy of the embedded SQLite database while the server runs.

SQLite's online backup API copies the database page by page under its own locking, so
writers are not stopped for long and the copy is a committed state (a plain file copy of a
live WAL database can miss the write-ahead log or tear a page). PostgreSQL has its own tools.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

PAGES_PER_STEP = 1024  # then the source is released for a moment, so writers get in


class BackupError(RuntimeError):
    pass


def backup_sqlite(database_url: str, target: Path) -> int:
    """Copy the database to `target` (which must not exist); return its size in bytes."""
    if not database_url.startswith("sqlite://"):
        raise BackupError(
            "pcg backup copies the embedded SQLite database; for PostgreSQL use "
            "`pg_dump --format=custom --file=pcg.dump DBNAME` (restore with `pg_restore "
            "--clean --dbname=DBNAME pcg.dump`)"
        )
    source_path = Path(database_url.removeprefix("sqlite://"))
    if not source_path.is_file():
        raise BackupError(f"no database at {source_path}")
    if target.exists():
        raise BackupError(f"{target} exists; a backup never overwrites a file")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True)
    try:
        copy = sqlite3.connect(partial)
        try:
            source.backup(copy, pages=PAGES_PER_STEP)
            check = copy.execute("PRAGMA integrity_check").fetchone()[0]
            if check != "ok":
                raise BackupError(f"the copy failed its integrity check: {check}")
            # A self-contained file: no -wal/-shm beside it.
            copy.execute("PRAGMA journal_mode=DELETE")
        finally:
            copy.close()
    finally:
        source.close()
    partial.rename(target)
    return target.stat().st_size
