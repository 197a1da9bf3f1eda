"""``jobyard agent``: run a node agent."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Annotated

import typer

from jobyard.agent.runner import AgentConfig, TokenRefused, VersionRefused, run_agent
from jobyard.logs import bind
from jobyard.logs import setup as setup_logs
from jobyard.wire.agent import MAX_SLOTS

# `jobyard agent` exits with this when the server refuses its token (docs/cli.md).
EXIT_TOKEN_REFUSED = 3
# ... and with this when the server does not speak the agent's protocol version.
EXIT_VERSION_REFUSED = 7


def agent(
    server: Annotated[
        str, typer.Option(envvar="JOBYARD_URL", help="Server URL, e.g. http://host:8400.")
    ],
    token: Annotated[
        str, typer.Option(envvar="JOBYARD_AGENT_TOKEN", help="An agent token (--role agent).")
    ],
    name: Annotated[str | None, typer.Option(help="Node name (default: the host name).")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="A tag; repeat for more.")] = None,
    cluster: Annotated[str | None, typer.Option(help="Join this cluster.")] = None,
    allow: Annotated[
        list[str] | None,
        typer.Option("--allow", help="Glob of commands this node runs; repeat. Default: any."),
    ] = None,
    state_dir: Annotated[
        Path | None, typer.Option(help="Where the agent keeps its journal.")
    ] = None,
    slots: Annotated[
        int,
        typer.Option(
            min=1,
            max=MAX_SLOTS,
            help="Runs taken at once; one more is answered busy. Shown in node lists.",
        ),
    ] = 1,
    max_jobs: Annotated[
        int | None, typer.Option(min=1, max=MAX_SLOTS, hidden=True, help="Old name of --slots.")
    ] = None,
    abort_grace: Annotated[float, typer.Option(help="Seconds between TERM and KILL.")] = 10.0,
    keep_runs: Annotated[
        int,
        typer.Option(
            min=0,
            envvar="JOBYARD_AGENT_KEEP_RUNS",
            help="Keep the newest N finished run directories (under the state dir) for debugging.",
        ),
    ] = 0,
) -> None:
    """Run a node agent: dial the server, run the commands it is sent (and allowed)."""
    setup_logs("info")
    node = name or socket.gethostname()
    config = AgentConfig(
        server=server,
        token=token,
        name=node,
        tags=list(tag or []),
        cluster=cluster,
        allow=list(allow or []),
        state_dir=state_dir or Path.home() / ".jobyard" / "agent" / node,
        slots=max_jobs if max_jobs is not None else slots,
        abort_grace=abort_grace,
        keep_runs=keep_runs,
    )
    with bind(node=node):
        try:
            asyncio.run(run_agent(config))
        except TokenRefused as exc:
            typer.secho(f"error: {exc}", fg="red", err=True)
            raise typer.Exit(EXIT_TOKEN_REFUSED) from None
        except VersionRefused as exc:
            typer.secho(f"error: {exc}", fg="red", err=True)
            raise typer.Exit(EXIT_VERSION_REFUSED) from None
