"""``jobyard admin backup`` and ``restore``: a consistent copy of the database, and back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from jobyard.cli.common import DatabaseOpt, DataDirOpt, fail, settings_from
from jobyard.domain.errors import JobyardError


def backup(
    path: Annotated[Path, typer.Argument(help="The backup file to write (must not exist).")],
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Back up the database while the server runs (SQLite online backup, or pg_dump)."""
    settings = settings_from(data_dir, database_url)
    from jobyard.store import backup as store_backup

    try:
        done = store_backup.backup(settings.db_url, path)
    except JobyardError as exc:
        fail(exc.detail, exc)
    typer.echo(f"backup written: {done.path} ({done.size} bytes, {done.detail})")


def restore(
    path: Annotated[Path, typer.Argument(help="A file written by `jobyard admin backup`.")],
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing database (kept aside).")
    ] = False,
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Restore a backup into the data dir's database. Stop the server first."""
    settings = settings_from(data_dir, database_url)
    from jobyard.store import backup as store_backup

    try:
        done = store_backup.restore(settings.db_url, path, force=force)
    except JobyardError as exc:
        fail(exc.detail, exc)
    typer.echo(f"restored: {done.path} ({done.detail}); start the server to use it")
