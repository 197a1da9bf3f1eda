"""Entry point of the ``jobyard`` command."""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING, Annotated

import typer

from jobyard import __version__
from jobyard.cli import (
    admin,
    backup,
    client_cmds,
    config_cmds,
    definition_cmds,
    task_cmds,
    trigger_cmds,
)
from jobyard.cli.agent import agent as agent_command
from jobyard.cli.ask import ask as ask_command
from jobyard.cli.common import DatabaseOpt, DataDirOpt, settings_from
from jobyard.cli.output import Format, OutputOpt, emit

if TYPE_CHECKING:
    from jobyard.service.context import Services

app = typer.Typer(
    help="jobyard: run a command on many machines: now, on a schedule, after approval, by webhook.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
admin.app.command("backup")(backup.backup)
admin.app.command("restore")(backup.restore)
app.add_typer(admin.app, name="admin")
app.add_typer(config_cmds.app, name="config")
app.command("agent")(agent_command)
app.command("ask")(ask_command)
client_cmds.register(app)
task_cmds.register(app)
trigger_cmds.register(app)
definition_cmds.register(app)

HostOpt = Annotated[
    str | None, typer.Option("--host", envvar="JOBYARD_HOST", help="Address to listen on.")
]
PortOpt = Annotated[
    int | None, typer.Option("--port", envvar="JOBYARD_PORT", help="Port to listen on.")
]


@app.command()
def version(output: OutputOpt = Format.TABLE) -> None:
    """Print the version."""
    if not emit({"version": __version__}, output):
        typer.echo(__version__)


@app.command()
def serve(
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
    host: HostOpt = None,
    port: PortOpt = None,
) -> None:
    """Run the server (migrations run on start)."""
    settings = settings_from(data_dir, database_url, host=host, port=port)
    from jobyard.cli.server import serve as run

    run(settings)


@app.command()
def migrate(database_url: DatabaseOpt = None, data_dir: DataDirOpt = None) -> None:
    """Bring the database schema up to date."""
    settings = settings_from(data_dir, database_url)
    from jobyard.store import Database

    async def main() -> None:
        db = Database(settings.db_url)
        try:
            await db.migrate()
        finally:
            await db.close()

    asyncio.run(main())
    typer.echo(f"database is up to date: {Database(settings.db_url).engine.url.render_as_string()}")


@app.command()
def up(
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
    host: HostOpt = None,
    port: PortOpt = None,
    org: Annotated[str, typer.Option(help="Name of the first organization.")] = "main",
    email: Annotated[str, typer.Option(help="Email of the first admin.")] = "admin@localhost",
    agent: Annotated[
        bool, typer.Option(help="Also run a local agent named after this host.")
    ] = True,
) -> None:
    """Everything on one machine: server on embedded SQLite, a first admin, a local agent."""
    settings = settings_from(data_dir, database_url, host=host, port=port)
    from jobyard.cli.server import bootstrap
    from jobyard.cli.server import serve as run

    async def ready(svc: Services) -> None:
        boot = await bootstrap(svc, org, email)
        typer.secho(f"jobyard is up at {boot.url}", fg="green", bold=True)
        typer.echo(f"  organization: {boot.org}")
        typer.echo(
            f"  admin:        {boot.email}"
            + (f" (password {boot.password})" if boot.password else "")
        )
        typer.echo(f"  token:        {boot.token}")
        typer.echo(
            f"  try:          curl -H 'Authorization: Bearer {boot.token}' {boot.url}/api/v1/me"
        )
        if agent:
            from jobyard.cli.local_agent import start_local_agent

            await start_local_agent(svc, boot, socket.gethostname())

    run(settings, on_ready=ready)


def main() -> None:
    app()
