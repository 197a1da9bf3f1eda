"""Options and helpers shared by the commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer

from jobyard.domain import errors
from jobyard.settings import Settings

DataDirOpt = Annotated[
    str | None,
    typer.Option("--data-dir", envvar="JOBYARD_DATA_DIR", help="Where jobyard keeps its files."),
]
DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        "--database-url", envvar="JOBYARD_DATABASE_URL", help="sqlite:///path or postgresql://..."
    ),
]

EXIT_CODES = {
    errors.Invalid: 2,
    errors.Unauthenticated: 3,
    errors.Forbidden: 4,
    errors.NotFound: 5,
    errors.Conflict: 6,
}


def settings_from(data_dir: str | None, database_url: str | None, **more: object) -> Settings:
    overrides: dict[str, object] = dict(more)
    if data_dir:
        overrides["data_dir"] = Path(data_dir)
    if database_url:
        overrides["database_url"] = database_url
    # Imported here: client commands and the agent use this module and need no database
    # layers; a node installs jobyard without the server's dependencies.
    try:
        from sqlalchemy.exc import ArgumentError
    except ImportError:
        fail("this command needs the server's dependencies: pip install 'jobyard[server]'")

    from jobyard.store.database import async_url

    try:
        settings = Settings.from_env(None, **overrides)
        async_url(settings.db_url)  # refuse a URL no driver takes now, not mid-start
        if settings.oidc_issuer:  # and a sign-in provider set up wrong
            from jobyard.service.oidc import Provider

            Provider.from_settings(settings)
    except (ValueError, ArgumentError) as exc:
        fail(str(exc), errors.Invalid(str(exc)))
    return settings


def fail(message: str, exc: BaseException | None = None) -> NoReturn:
    code = 1
    if exc is not None:
        for cls, value in EXIT_CODES.items():
            if isinstance(exc, cls):
                code = value
                break
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(code)
