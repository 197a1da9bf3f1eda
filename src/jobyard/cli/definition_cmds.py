"""``jobyard apply`` and ``jobyard export``: tasks, stacks, schedules, triggers and webhooks
kept in files (YAML or TOML), planned and applied like any other configuration."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from jobyard.cli.client_cmds import OrgOpt, ServerOpt, TokenOpt, _call, _client, console, err
from jobyard.client import definitions as defs
from jobyard.wire.definitions import Definitions


def apply(
    file: Annotated[
        list[Path],
        typer.Option("-f", "--file", help="A .yaml/.yml/.toml file or a directory; repeat."),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan (a diff) and change nothing.")
    ] = False,
    prune: Annotated[
        bool,
        typer.Option("--prune", help="Delete what files managed before and no longer name."),
    ] = False,
    server: ServerOpt = None,
    token: TokenOpt = None,
    org: OrgOpt = None,
) -> None:
    """Create or update definitions by name from files; print the plan first."""
    try:
        desired = defs.load(file)
    except defs.DefinitionError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    client = _client(server, token, org)
    the_plan = _call(defs.plan, client, desired, prune=prune)
    console.print(the_plan.describe(), highlight=False, markup=False)
    if dry_run or the_plan.empty:
        if dry_run and not the_plan.empty:
            console.print("dry run: nothing changed")
        if the_plan.empty:
            source = ", ".join(str(f) for f in file)
            _call(defs.apply, client, the_plan, source)  # records what the files manage
        return
    source = ", ".join(str(f) for f in file)
    try:
        _call(defs.apply, client, the_plan, source)
    except defs.DefinitionError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    console.print("applied")


def export(
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write to this file (default: stdout).")
    ] = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            envvar="JOBYARD_OUTPUT",
            help="yaml or json (-o names the file here; table means yaml).",
        ),
    ] = "yaml",
    schema: Annotated[
        bool, typer.Option("--schema", help="Print the JSON Schema of the format instead.")
    ] = False,
    server: ServerOpt = None,
    token: TokenOpt = None,
    org: OrgOpt = None,
) -> None:
    """Write the current definitions in the format `jobyard apply` reads."""
    fmt = "yaml" if fmt == "table" else fmt
    if fmt not in ("yaml", "json"):
        err.print("[red]error:[/] --format is yaml or json")
        raise typer.Exit(2)
    if schema:
        text = json.dumps(Definitions.model_json_schema(), indent=2) + "\n"
    else:
        client = _client(server, token, org)
        text = defs.dump(_call(defs.export, client), fmt)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)
        console.print(f"wrote {output}")


def register(app: typer.Typer) -> None:
    app.command()(apply)
    app.command()(export)
