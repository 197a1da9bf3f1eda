"""Task commands: ``jobyard tasks`` lists them, ``jobyard task run`` starts one."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from jobyard.cli.client_cmds import (
    OrgOpt,
    ServerOpt,
    TokenOpt,
    _call,
    _client,
    _job_table,
    console,
    err,
)
from jobyard.cli.follow import styled, succeeded
from jobyard.cli.output import Format, OutputOpt, emit
from jobyard.client import Client

task_app = typer.Typer(help="Run tasks.", no_args_is_help=True)
stack_app = typer.Typer(help="Run stacks.", no_args_is_help=True)


def tasks(
    type: Annotated[
        str | None, typer.Option(help="Only this type: script, input, approval, notification.")
    ] = None,
    output: OutputOpt = Format.TABLE,
    server: ServerOpt = None,
    token: TokenOpt = None,
    org: OrgOpt = None,
) -> None:
    """List tasks."""
    client = _client(server, token, org)
    page = _call(client.list_tasks, type=type, page_size=100)
    if emit({"count": page["count"], "results": page["results"]}, output):
        return
    table = Table()
    for col in ("id", "name", "type", "arguments", "concurrency", "secret"):
        table.add_column(col)
    for t in page["results"]:
        args = ", ".join(a["name"] + ("" if a["required"] else "?") for a in t["arguments"])
        table.add_row(
            str(t["id"]),
            t["name"],
            t["type"],
            args,
            t["concurrency"]["mode"],
            t["secret_prefix"] + "…" if t["has_secret"] else "",
        )
    console.print(table)
    if not page["results"]:
        console.print("no tasks yet: define one with POST /api/v1/tasks")


def _task_id(client: Client, ref: str) -> int:
    if ref.isdigit():
        return int(ref)
    found: dict[str, Any] = _call(client.task_by_name, ref)
    return int(found["id"])


def _arguments(positional: list[str], named: list[str]) -> Any:
    if positional and named:
        err.print("[red]error:[/] give arguments by position or with --arg, not both")
        raise typer.Exit(2)
    if named:
        out: dict[str, str] = {}
        for item in named:
            key, sep, value = item.partition("=")
            if not sep or not key:
                err.print(f"[red]error:[/] --arg {item!r} is not NAME=VALUE")
                raise typer.Exit(2)
            out[key] = value
        return out
    return positional or None


@task_app.command("run")
def run_task(
    task: Annotated[str, typer.Argument(help="The task's name or id.")],
    values: Annotated[
        list[str] | None, typer.Argument(help="Argument values, in the task's order.")
    ] = None,
    arg: Annotated[
        list[str] | None, typer.Option("--arg", help="An argument as NAME=VALUE (repeatable).")
    ] = None,
    wait: Annotated[bool, typer.Option(help="Wait for the job to finish.")] = False,
    server: ServerOpt = None,
    token: TokenOpt = None,
    org: OrgOpt = None,
) -> None:
    """Run a task; with --wait, exit 0 only when every node succeeded."""
    client = _client(server, token, org)
    job = _call(client.run_task, _task_id(client, task), _arguments(values or [], arg or []))
    console.print(f"job {job['id']}: {styled(job['status'])} ({job['url']})")
    if not wait or job["status"] == "onhold":
        if job["status"] == "onhold":
            console.print("it waits for a person: approve, reject or give input to it")
        return
    _wait_job(client, job)


def _wait_job(client: Client, job: dict[str, Any]) -> None:
    """Wait for the job to finish, show it, and exit 0 only when every node succeeded."""
    job = _call(client.wait, job["id"])
    console.print(_job_table(job))
    raise typer.Exit(0 if succeeded(job) else 1)


def _steps_table(run: dict[str, Any]) -> Table:
    table = Table(title=f"stack run {run['id']} ({run['stack']}): {styled(run['status'])}")
    for col in ("step", "task", "state", "job"):
        table.add_column(col)
    for s in run["steps"]:
        label = "on failure" if s["on_failure_step"] else str(s["index"] + 1)
        job = "" if s["job_id"] is None else f"{s['job_id']} ({s['job_status']})"
        table.add_row(label, s["task"] or str(s["task_id"]), styled(s["state"]), job)
    return table


@stack_app.command("run")
def run_stack(
    stack: Annotated[str, typer.Argument(help="The stack's name or id.")],
    values: Annotated[
        list[str] | None, typer.Argument(help="Argument values (a one-task stack).")
    ] = None,
    arg: Annotated[
        list[str] | None, typer.Option("--arg", help="An argument as NAME=VALUE (repeatable).")
    ] = None,
    wait: Annotated[bool, typer.Option(help="Wait for the stack run to end.")] = False,
    server: ServerOpt = None,
    token: TokenOpt = None,
    org: OrgOpt = None,
) -> None:
    """Run a stack; with --wait, exit 0 only when it succeeded (every step of a chain)."""
    client = _client(server, token, org)
    stack_id = int(stack) if stack.isdigit() else int(_call(client.stack_by_name, stack)["id"])
    job = _call(client.run_stack, stack_id, _arguments(values or [], arg or []))
    run_id = job.get("stack_run_id")
    if run_id is None:
        console.print(f"job {job['id']}: {styled(job['status'])} ({job['url']})")
        if wait:
            _wait_job(client, job)
        return
    console.print(f"stack run {run_id}: first step is job {job['id']} ({job['stack_run_url']})")
    if not wait:
        return
    run = _call(client.wait_stack_run, run_id)
    console.print(_steps_table(run))
    if run.get("reason"):
        console.print(run["reason"])
    raise typer.Exit(0 if run["status"] == "succeeded" else 1)


def register(app: typer.Typer) -> None:
    app.command()(tasks)
    app.add_typer(task_app, name="task")
    app.add_typer(stack_app, name="stack")
