"""``jobyard admin``: create organizations, users and tokens directly in the database."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from jobyard.cli.common import DatabaseOpt, DataDirOpt, fail, settings_from
from jobyard.domain.accounts import parse_role
from jobyard.domain.errors import JobyardError

if TYPE_CHECKING:
    from jobyard.service.context import Services

app = typer.Typer(help="Administer organizations, users and tokens.", no_args_is_help=True)
T = TypeVar("T")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]


def run_with_services(
    data_dir: str | None, database_url: str | None, work: Callable[[Services], Awaitable[T]]
) -> T:
    # Server layers load only for admin commands, keeping client commands quick to start.
    from jobyard.service.context import Services
    from jobyard.store import Database

    settings = settings_from(data_dir, database_url)

    async def main() -> T:
        db = Database(settings.db_url)
        try:
            await db.migrate()
            return await work(Services(db=db, settings=settings))
        finally:
            await db.close()

    try:
        return asyncio.run(main())
    except JobyardError as exc:
        fail(exc.detail, exc)


def _accounts() -> Any:
    from jobyard.service import accounts

    return accounts


def _emit(as_json: bool, data: dict[str, Any], text: str) -> None:
    typer.echo(json.dumps(data) if as_json else text)


@app.command("create-org")
def create_org(
    name: str,
    display_name: Annotated[str | None, typer.Option(help="A human name.")] = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an organization."""
    org = run_with_services(
        data_dir, database_url, lambda svc: _accounts().create_org(svc, name, display_name)
    )
    _emit(
        as_json, {"id": org.id, "name": org.name}, f"created organization {org.name} (id {org.id})"
    )


@app.command("create-user")
def create_user(
    org: Annotated[str, typer.Option(help="Organization name.")],
    email: Annotated[str, typer.Option(help="The user's email.")],
    role: Annotated[str, typer.Option(help="viewer, user or admin.")] = "user",
    password: Annotated[str | None, typer.Option(help="Password for the dashboard.")] = None,
    display_name: Annotated[str | None, typer.Option(help="A human name.")] = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a user (or reuse one with that email) with a role in an organization."""
    parsed = _role(role)
    user = run_with_services(
        data_dir,
        database_url,
        lambda svc: _accounts().create_user(
            svc, org, email, parsed, display_name=display_name, password=password
        ),
    )
    _emit(
        as_json,
        {"id": user.id, "email": user.email, "org": org, "role": parsed.value},
        f"{user.email} is {parsed.value} in {org} (user id {user.id})",
    )


def _role(value: str) -> Any:
    try:
        return parse_role(value)
    except JobyardError as exc:
        fail(exc.detail, exc)


@app.command("create-token")
def create_token(
    org: Annotated[str, typer.Option(help="Organization name.")],
    email: Annotated[str, typer.Option(help="The user the token acts as.")],
    role: Annotated[str | None, typer.Option(help="Limit the token to a role, or 'agent'.")] = None,
    name: Annotated[str, typer.Option(help="A label for the token.")] = "cli",
    expires_in_days: Annotated[int | None, typer.Option(help="Expire after N days.")] = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an API token and print it. It is shown only this once."""
    parsed = _role(role) if role else None
    expires = (
        dt.datetime.now(dt.UTC) + dt.timedelta(days=expires_in_days) if expires_in_days else None
    )
    issued = run_with_services(
        data_dir,
        database_url,
        lambda svc: _accounts().create_token(
            svc, org, email, name=name, role=parsed, expires_at=expires
        ),
    )
    _emit(
        as_json,
        {"id": issued.token.id, "token": issued.secret, "org": org, "role": issued.token.role},
        issued.secret,
    )
