"""Trigger commands: ``jobyard triggers`` lists them, ``jobyard trigger REF`` shows one with
its fire history (each slot fired, queued or skipped, and why)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.markup import escape
from rich.table import Table

from jobyard.cli.client_cmds import OrgOpt, ServerOpt, TokenOpt, _call, _client, console
from jobyard.cli.follow import styled
from jobyard.cli.output import Format, OutputOpt, emit
from jobyard.client import Client


def _runs(t: dict[str, Any]) -> str:
    what = [f"task {t['task_id']}"] if t["task_id"] else []
    if t["stack_id"]:
        what.append(f"stack {t['stack_id']}")
    return " on ".join(what)


def triggers(
    output: OutputOpt = Format.TABLE,
    server: ServerOpt = None,
    token: TokenOpt = None,
    org: OrgOpt = None,
) -> None:
    """List triggers: what each runs, on which schedule, and its next slot."""
    client = _client(server, token, org)
    found = _call(client.all_pages, "/api/v1/triggers")
    if emit({"count": len(found), "results": found}, output):
        return
    table = Table()
    for col in ("id", "name", "runs", "schedule", "enabled", "overlap", "next fire"):
        table.add_column(col)
    for t in found:
        table.add_row(
            str(t["id"]),
            escape(t["name"] or ""),
            _runs(t),
            str(t["schedule_id"]),
            "yes" if t["enabled"] else "no",
            t["overlap"]["mode"],
            t["next_fire_at"] or "",
        )
    console.print(table)
    if not found:
        console.print("no triggers yet: define one with POST /api/v1/triggers")


def _trigger(client: Client, ref: str) -> dict[str, Any]:
    path = f"/api/v1/triggers/{ref}" if ref.isdigit() else f"/api/v1/triggers/by-name/{quote(ref)}"
    found: dict[str, Any] = _call(client.request, "GET", path)
    return found


def trigger(
    ref: Annotated[str, typer.Argument(help="The trigger's id or name.")],
    fires: Annotated[int, typer.Option(help="How many of the latest slots to show.")] = 20,
    output: OutputOpt = Format.TABLE,
    server: ServerOpt = None,
    token: TokenOpt = None,
    org: OrgOpt = None,
) -> None:
    """Show one trigger and its fire history, newest first: each slot's outcome (fired,
    skipped), its job, and why (a busy node, a full queue, a policy)."""
    client = _client(server, token, org)
    found = _trigger(client, ref)
    page = _call(client.request, "GET", f"/api/v1/triggers/{found['id']}/fires", page_size=fires)
    if emit({**found, "fires": page["results"]}, output):
        return
    console.print(
        f"trigger {found['id']} {escape(found['name'] or '')}: runs {_runs(found)} on "
        f"schedule {found['schedule_id']}, {'enabled' if found['enabled'] else 'disabled'}, "
        f"overlap {found['overlap']['mode']}, next fire {found['next_fire_at'] or '—'}"
    )
    table = Table(title="fires (newest first)", title_justify="left")
    for col in ("slot", "outcome", "job", "reason"):
        table.add_column(col)
    for f in page["results"]:
        tone = "aborted" if f["outcome"] == "skipped" else f["outcome"]  # skipped: amber
        table.add_row(
            f["slot"],
            styled(tone, f["outcome"]),
            str(f["job_id"] or ""),
            escape(f["reason"] or ""),
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command()(triggers)
    app.command()(trigger)
