"""``jobyard admin``: create organizations, users and tokens directly in the database."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from jobyard.cli.common import DatabaseOpt, DataDirOpt, fail, settings_from
from jobyard.cli.output import Format, OutputOpt, emit
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


@app.command("new-secret-key")
def new_secret_key() -> None:
    """Print a new key for JOBYARD_SECRET_KEY (a Fernet key)."""
    from jobyard.service.secrets import new_key

    typer.echo(new_key())


@app.command("rotate-secret-key")
def rotate_secret_key(
    new_key: Annotated[
        str | None,
        typer.Option(
            "--new-key",
            envvar="JOBYARD_NEW_SECRET_KEY",
            help="The new key (required when JOBYARD_SECRET_KEY sets the key; else made).",
        ),
    ] = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-seal every stored secret with a new key, in one transaction (stop the servers
    first; start them with the new key)."""
    from jobyard.service.secrets import rotate_key

    done = run_with_services(data_dir, database_url, lambda svc: rotate_key(svc, new_key))
    where = (
        f"the key file {done.key_file} now holds the new key"
        if done.key_file is not None
        else "set JOBYARD_SECRET_KEY to the new key before starting the servers"
    )
    _emit(
        as_json,
        {
            "resealed": done.resealed,
            "key_id": done.key_id,
            "key_file": str(done.key_file) if done.key_file else None,
        },
        f"{done.resealed} secret value(s) re-sealed with key {done.key_id}; {where}",
    )


chef_key = typer.Typer(
    help="Chef user and client names with the public keys their requests are signed with.",
    no_args_is_help=True,
)
app.add_typer(chef_key, name="chef-key")


def _chef_keys() -> Any:
    from jobyard.service import chef_keys

    return chef_keys


@chef_key.command("add")
def chef_key_add(
    name: Annotated[str, typer.Argument(help="The Chef user or client name (X-Ops-UserId).")],
    org: Annotated[str, typer.Option(help="Organization name.")],
    email: Annotated[str, typer.Option(help="The member this Chef name acts as.")],
    public_key: Annotated[
        str | None,
        typer.Option(help="A PEM file with the public key; without it a key pair is made."),
    ] = None,
    private_key_file: Annotated[
        str | None,
        typer.Option(help="Write a made private key to this file (0600) instead of printing it."),
    ] = None,
    role: Annotated[str | None, typer.Option(help="Limit the name to a role, or 'agent'.")] = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a Chef name for a member, with its public key or a new key pair.

    A made private key is printed (or written to --private-key-file) this once only.
    """
    parsed = _role(role) if role else None
    pem = None
    if public_key is not None:
        try:
            with open(public_key, encoding="utf-8") as fh:
                pem = fh.read()
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"cannot read the public key file {public_key!r}: {exc}")
    added = run_with_services(
        data_dir,
        database_url,
        lambda svc: _chef_keys().add_key(svc, org, name, email, public_key=pem, role=parsed),
    )
    private = added.private_key
    if private is not None and private_key_file is not None:
        fd = os.open(private_key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(private)
        private = None
    data: dict[str, Any] = {
        "name": added.key.name,
        "org": org,
        "email": added.key.email,
        "role": added.key.role,
        "fingerprint": _chef_keys().fingerprint(added.key.public_key),
    }
    if private is not None:
        data["private_key"] = private
    text = f"{added.key.name} signs as {added.key.email} in {org}"
    if private is not None:
        text = private.rstrip("\n")
    elif private_key_file is not None:
        text += f"; private key written to {private_key_file}"
    _emit(as_json, data, text)


@chef_key.command("list")
def chef_key_list(
    org: Annotated[str, typer.Option(help="Organization name.")],
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
    as_json: JsonOpt = False,
    output: OutputOpt = Format.TABLE,
) -> None:
    """The Chef names of an organization, with the member each acts as (``--json``: the
    list alone, as before ``-o``)."""
    keys = run_with_services(data_dir, database_url, lambda svc: _chef_keys().list_keys(svc, org))
    rows = [
        {
            "name": k.name,
            "email": k.email,
            "role": k.role,
            "fingerprint": _chef_keys().fingerprint(k.public_key),
        }
        for k in keys
    ]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    if emit({"count": len(rows), "results": rows}, output):
        return
    for r in rows:
        typer.echo(f"{r['name']}\t{r['email']}\t{r['role'] or 'member role'}\t{r['fingerprint']}")


@chef_key.command("remove")
def chef_key_remove(
    name: Annotated[str, typer.Argument(help="The Chef user or client name.")],
    org: Annotated[str, typer.Option(help="Organization name.")],
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Forget a Chef name: its signed requests are refused from now on."""
    run_with_services(data_dir, database_url, lambda svc: _chef_keys().remove_key(svc, org, name))
    _emit(as_json, {"name": name, "org": org, "removed": True}, f"removed {name} from {org}")
