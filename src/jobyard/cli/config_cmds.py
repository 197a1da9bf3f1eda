"""``jobyard config show``: the effective settings and where each comes from, secrets hidden."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from jobyard.cli.common import DatabaseOpt, DataDirOpt
from jobyard.cli.output import Format, OutputOpt, emit
from jobyard.settings import Settings

app = typer.Typer(help="Inspect jobyard's settings.", no_args_is_help=True)

HIDDEN = "••••"
_SECRET_WORDS = ("password", "secret", "token", "key")


def is_secret(name: str) -> bool:
    return any(word in name for word in _SECRET_WORDS)


def _shown(name: str, value: Any) -> Any:
    if is_secret(name) and not isinstance(value, bool):  # password_sign_in is a switch
        return HIDDEN if value else ""
    if name == "database_url" and value:
        from sqlalchemy.engine import make_url

        return make_url(str(value)).render_as_string(hide_password=True)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | frozenset | set):
        return list(value)
    return value


def effective(settings: Settings, env: dict[str, str], flags: set[str]) -> list[dict[str, Any]]:
    """One row per setting: name, shown value, environment variable, source."""
    rows = []
    sources = Settings.sources(env, flags)
    for f in dataclasses.fields(settings):
        if f.name == "extra":
            continue
        var = f"JOBYARD_{f.name.upper()}"
        source = sources.get(f.name, "default")
        rows.append(
            {
                "name": f.name,
                "value": _shown(f.name, getattr(settings, f.name)),
                "env": var,
                "source": source,
            }
        )
    rows.append(
        {
            "name": "database",
            "value": _shown("database_url", settings.db_url),
            "env": "",
            "source": "derived",
        }
    )
    return rows


@app.command("show")
def show(
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="The same as -o json.")] = False,
    output: OutputOpt = Format.TABLE,
) -> None:
    """Print the settings `jobyard serve` would use here (secrets shown as ••••)."""
    flags: dict[str, Any] = {}
    if data_dir:
        flags["data_dir"] = Path(data_dir)
    if database_url:
        flags["database_url"] = database_url
    env = dict(os.environ)
    try:
        settings = Settings.from_env(env, **flags)
    except ValueError as exc:
        from jobyard.cli.common import fail

        fail(str(exc))
    rows = effective(settings, env, set(flags))
    shown = {row["name"]: row["value"] for row in rows}
    if as_json:
        typer.echo(json.dumps(shown, default=str))
        return
    if emit(json.loads(json.dumps(shown, default=str)), output):
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("setting", "value", "environment variable", "from")
    for row in rows:
        value = row["value"]
        table.add_row(
            row["name"],
            value if isinstance(value, str) else json.dumps(value),
            row["env"],
            row["source"],
        )
    Console().print(table)
