"""Backups of the database: a consistent copy taken while the server runs, and its restore.

SQLite uses its online backup API (pages copied under a read transaction, so writers keep
going and the copy is one moment's state). PostgreSQL is backed up by its own tools,
``pg_dump`` and ``pg_restore``, which jobyard runs when they are installed.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from jobyard.domain.errors import Conflict, Invalid


@dataclass(frozen=True)
class BackupResult:
    path: Path
    size: int
    kind: str  # sqlite | pg_dump
    detail: str


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///`` URL; None for any other database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    if not parsed.database:
        raise Invalid("an in-memory SQLite database cannot be backed up")
    return Path(parsed.database)


def backup(url: str, dest: Path) -> BackupResult:
    """Write a consistent copy of the database at ``url`` to ``dest`` (never overwritten)."""
    if dest.exists():
        raise Conflict(f"{dest} exists already: choose a new file for the backup")
    dest.parent.mkdir(parents=True, exist_ok=True)
    path = sqlite_path(url)
    if path is not None:
        if not path.exists():
            raise Invalid(f"no database at {path}")
        source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        target = sqlite3.connect(dest)
        try:
            source.backup(target)
            _check_sqlite(target, dest)
        finally:
            target.close()
            source.close()
        return BackupResult(dest, dest.stat().st_size, "sqlite", f"copied {path}")
    return _pg_dump(url, dest)


def restore(url: str, source: Path, *, force: bool = False) -> BackupResult:
    """Put the backup ``source`` in place of the database at ``url``.

    The server must be stopped. An existing SQLite database is refused unless ``force``,
    and then kept beside the restored one as ``*.before-restore``.
    """
    if not source.is_file():
        raise Invalid(f"no backup at {source}")
    path = sqlite_path(url)
    if path is None:
        return _pg_restore(url, source)
    check = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        _check_sqlite(check, source)
    finally:
        check.close()
    if path.exists():
        if not force:
            raise Conflict(f"{path} exists: stop the server and pass --force to replace it")
        shutil.move(path, path.with_name(path.name + ".before-restore"))
        for suffix in ("-wal", "-shm"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    backup_conn = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    target = sqlite3.connect(path)
    try:
        backup_conn.backup(target)
    finally:
        target.close()
        backup_conn.close()
    return BackupResult(path, path.stat().st_size, "sqlite", f"restored from {source}")


def _check_sqlite(conn: sqlite3.Connection, where: Path) -> None:
    try:
        _check_sqlite_schema(conn, where)
    except sqlite3.DatabaseError as exc:
        raise Invalid(f"{where} is not a jobyard database: {exc}") from exc


def _check_sqlite_schema(conn: sqlite3.Connection, where: Path) -> None:
    ok = conn.execute("PRAGMA integrity_check").fetchone()
    if not ok or ok[0] != "ok":
        raise Invalid(f"{where} is damaged: {ok[0] if ok else 'no answer'}")
    has_schema = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
    ).fetchone()
    if not has_schema:
        raise Invalid(f"{where} is not a jobyard database")


def _libpq_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _pg_tool(name: str, url: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise Invalid(
            f"{name} is not installed here. Back up PostgreSQL with its own tools: "
            f"pg_dump --format=custom --file=BACKUP '{make_url(url).render_as_string()}' "
            "(and pg_restore --clean --if-exists --dbname=URL BACKUP to restore)"
        )
    return found


def _pg_dump(url: str, dest: Path) -> BackupResult:
    tool = _pg_tool("pg_dump", url)
    done = subprocess.run(
        [tool, "--format=custom", f"--file={dest}", _libpq_url(url)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        dest.unlink(missing_ok=True)
        raise Invalid(f"pg_dump failed: {done.stderr.strip()}")
    return BackupResult(dest, dest.stat().st_size, "pg_dump", "pg_dump --format=custom")


def _pg_restore(url: str, source: Path) -> BackupResult:
    tool = _pg_tool("pg_restore", url)
    done = subprocess.run(
        [tool, "--clean", "--if-exists", "--no-owner", f"--dbname={_libpq_url(url)}", str(source)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise Invalid(f"pg_restore failed: {done.stderr.strip()}")
    return BackupResult(source, source.stat().st_size, "pg_dump", "pg_restore --clean")
