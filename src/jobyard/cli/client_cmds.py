"""Client commands: talk to a running server through the native API."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from jobyard.cli.follow import follow, job_status, node_table, styled, succeeded
from jobyard.cli.output import Format, OutputOpt, emit
from jobyard.client import ApiError, Client, Profile, resolve
from jobyard.client.http import FINISHED
from jobyard.client.profile import save

console = Console()
err = Console(stderr=True)

ServerOpt = Annotated[str | None, typer.Option("--server", help="Server URL (else JOBYARD_URL).")]
TokenOpt = Annotated[str | None, typer.Option("--token", help="API token (else JOBYARD_TOKEN).")]
OrgOpt = Annotated[str | None, typer.Option("--org", help="Organization (else JOBYARD_ORG).")]


def _client(server: str | None, token: str | None, org: str | None) -> Client:
    profile = resolve(server, token, org)
    if profile is None:
        err.print(
            "[red]error:[/] no server/token: pass --server and --token, set JOBYARD_URL and "
            "JOBYARD_TOKEN, or run `jobyard login`"
        )
        raise typer.Exit(2)
    client = Client(profile.server, profile.token)
    if profile.org:
        me = _call(client.me)
        if me["organization"]["name"] != profile.org:
            err.print(
                f"[red]error:[/] this token belongs to {me['organization']['name']!r}, "
                f"not {profile.org!r}"
            )
            raise typer.Exit(2)
    return client


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except ApiError as exc:
        err.print(f"[red]error:[/] {exc.detail}")
        codes = {400: 2, 401: 3, 403: 4, 404: 5, 409: 6, 422: 2}
        raise typer.Exit(codes.get(exc.status, 1)) from None


def _job_table(job: dict[str, Any]) -> Table:
    return node_table(job["node_runs"], f"job {job['id']}: {job_status(job)}")


def login(
    server: Annotated[str, typer.Option(help="Server URL.")],
    token: Annotated[str, typer.Option(help="API token.")],
    org: OrgOpt = None,
) -> None:
    """Check a token against a server and save them as the default profile."""
    client = Client(server, token)
    me = _call(client.me)
    path = save(Profile(server, token, org or me["organization"]["name"]))
    console.print(
        f"logged in as {me['user']['email']} ({me['role']}) in {me['organization']['name']}; "
        f"profile saved to {path}"
    )


def _secret_pairs(given: list[str]) -> dict[str, str]:
    """``NAME=value``, or ``NAME`` alone: the value of NAME in this environment (so that it
    is not in the shell's history or the process list)."""
    out: dict[str, str] = {}
    for item in given:
        name, sep, value = item.partition("=")
        if not sep:
            if name not in os.environ:
                err.print(f"[red]error:[/] --secret-env {name}: {name} is not set here")
                raise typer.Exit(2)
            value = os.environ[name]
        out[name] = value
    return out


def run(
    command: Annotated[list[str], typer.Argument(help="The command, after --.")],
    nodes: Annotated[str | None, typer.Option(help="Comma-separated node names.")] = None,
    tags: Annotated[str | None, typer.Option(help="Comma-separated tags (with --count).")] = None,
    cluster: Annotated[str | None, typer.Option(help="A cluster name.")] = None,
    count: Annotated[int | None, typer.Option(help="How many nodes of the tags/cluster.")] = None,
    quorum: Annotated[str | None, typer.Option(help="A count or a percentage such as 50%.")] = None,
    timeout: Annotated[int | None, typer.Option(help="run_timeout in seconds.")] = None,
    env: Annotated[list[str] | None, typer.Option("--env", help="NAME=value; repeat.")] = None,
    secret_env: Annotated[
        list[str] | None,
        typer.Option(
            "--secret-env",
            help="NAME=value, stored encrypted, shown as ••••, masked in the output; or NAME "
            "alone to take the value from this shell's environment. Repeat.",
        ),
    ] = None,
    dir: Annotated[str | None, typer.Option(help="Working directory on the nodes.")] = None,
    name: Annotated[str | None, typer.Option(help="A name for the job.")] = None,
    shell: Annotated[bool, typer.Option(help="Run through /bin/sh -c (one string).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print no outputs.")] = False,
    no_prefix: Annotated[
        bool, typer.Option("--no-prefix", help="Print output lines without their node's name.")
    ] = False,
    node: Annotated[
        list[str] | None, typer.Option("--node", help="Print only this node's output; repeat.")
    ] = None,
    allow_unknown_nodes: Annotated[
        bool,
        typer.Option(
            "--allow-unknown-nodes", help="Accept node names no agent has registered yet."
        ),
    ] = False,
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Print the job's id and do not follow it.")
    ] = False,
    server: ServerOpt = None,
    token: TokenOpt = None,
    org: OrgOpt = None,
) -> None:
    """Run a command on nodes and follow it live: output lines prefixed by node as they
    arrive, the nodes' states (a summary above 20 nodes), and at the end the nodes that did
    not succeed. Ctrl-C asks whether to detach or stop the job. Exits 0 only when the job is
    complete and every node succeeded, nacked or was unavailable (see docs/cli.md)."""
    client = _client(server, token, org)
    body: dict[str, Any] = {}
    if shell or len(command) == 1:
        body["command"] = " ".join(command)
    else:
        body["argv"] = command
    if nodes:
        body["nodes"] = [n.strip() for n in nodes.split(",") if n.strip()]
    if tags:
        body["tags"] = [t.strip() for t in tags.split(",") if t.strip()]
    if cluster:
        body["cluster"] = cluster
    if count is not None:
        body["count"] = count
    if quorum is not None:
        body["quorum"] = int(quorum) if quorum.isascii() and quorum.isdigit() else quorum
    if timeout is not None:
        body["run_timeout"] = timeout
    if env:
        pairs = [e.split("=", 1) for e in env]
        if any(len(p) != 2 for p in pairs):
            err.print("[red]error:[/] --env takes NAME=value")
            raise typer.Exit(2)
        body["env"] = dict(pairs)
    if secret_env:
        body["secret_env"] = _secret_pairs(secret_env)
    if dir:
        body["dir"] = dir
    if name:
        body["name"] = name
    if allow_unknown_nodes:
        body["allow_unknown_nodes"] = True
    if not any(k in body for k in ("nodes", "tags", "cluster", "count")):
        err.print(
            "[red]error:[/] say where to run it: --nodes NAME[,NAME...] (see `jobyard nodes`), "
            "--tags, --cluster or --count"
        )
        raise typer.Exit(2)
    job = _call(client.create_job, **body)
    if detach:
        console.print(job["id"])
        raise typer.Exit(0)
    code = _call(
        follow,
        client,
        job,
        console,
        err,
        prefix=not no_prefix,
        nodes=set(node) if node else None,
        quiet=quiet,
    )
    raise typer.Exit(code)


def jobs(
    status: Annotated[str | None, typer.Option(help="Comma-separated statuses.")] = None,
    limit: Annotated[int, typer.Option(help="How many.")] = 20,
    output: OutputOpt = Format.TABLE,
    server: ServerOpt = None,
    token: TokenOpt = None,
    org: OrgOpt = None,
) -> None:
    """List recent jobs, newest first."""
    client = _client(server, token, org)
    page = _call(client.list_jobs, status=status, page_size=limit)
    if emit({"count": page["count"], "results": page["results"]}, output):
        return
    table = Table()
    for col in ("id", "status", "command", "nodes", "created"):
        table.add_column(col)
    for j in page["results"]:
        states = ", ".join(f"{k} {len(v)}" for k, v in j["node_states"].items())
        table.add_row(str(j["id"]), job_status(j), j["command"][:60], states, j["created_at"])
    console.print(table)
    if not page["results"]:
        console.print("no jobs yet: try `jobyard run --nodes NODE -- uptime`")


def job(
    job_id: int,
    follow_: Annotated[
        bool, typer.Option("--follow", "-f", help="Follow it live until it ends.")
    ] = False,
    no_prefix: Annotated[
        bool, typer.Option("--no-prefix", help="Print output lines without their node's name.")
    ] = False,
    node: Annotated[
        list[str] | None, typer.Option("--node", help="Print only this node's output; repeat.")
    ] = None,
    output: OutputOpt = Format.TABLE,
    server: ServerOpt = None,
    token: TokenOpt = None,
    org: OrgOpt = None,
) -> None:
    """Show one job: node states with their reasons, history and outputs; with --follow,
    its output live until it ends (exit codes as `jobyard run`)."""
    client = _client(server, token, org)
    data = _call(client.get_job, job_id)
    if not follow_ and emit({**data, "history": _call(client.history, job_id)}, output):
        return
    console.print(f"command: {escape(data['command'])}")
    if follow_ and data["status"] not in FINISHED:
        code = _call(
            follow,
            client,
            data,
            console,
            err,
            prefix=not no_prefix,
            nodes=set(node) if node else None,
        )
        raise typer.Exit(code)
    console.print(_job_table(data))
    for event in _call(client.history, job_id):
        console.print(
            f"  {event['created_at']}  {event['from_status'] or '':>13} → "
            f"{styled(event['to_status'] or '')}  {escape(event['reason'] or '')}"
        )
    for r in data["node_runs"]:
        if node and r["node"] not in node:
            continue
        for stream in ("stdout", "stderr"):
            text = _call(client.output, job_id, r["node"], stream)
            if text:
                console.rule(f"{r['node']} {stream}", style="dim")
                console.out(text, end="" if text.endswith("\n") else "\n", highlight=False)
    if follow_:
        raise typer.Exit(0 if succeeded(data) else 1)


def nodes(
    output: OutputOpt = Format.TABLE,
    server: ServerOpt = None,
    token: TokenOpt = None,
    org: OrgOpt = None,
) -> None:
    """List nodes."""
    client = _client(server, token, org)
    items = _call(client.nodes)
    if emit({"count": len(items), "results": items}, output):
        return
    table = Table()
    for col in ("name", "status", "availability", "slots", "tags", "cluster", "last heartbeat"):
        table.add_column(col)
    for n in items:
        status = "[green]online[/]" if n["online"] else "[dim]offline[/]"
        table.add_row(
            n["name"],
            status,
            n["availability"],
            str(n.get("slots", 1)),
            ",".join(n["tags"]),
            n["cluster"] or "",
            n["last_heartbeat"] or "",
        )
    console.print(table)
    if not items:
        console.print("no nodes yet: start one with `jobyard agent --server URL --token T`")


def stop(
    job_id: int,
    reason: Annotated[str | None, typer.Option(help="Why.")] = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
    org: OrgOpt = None,
) -> None:
    """Stop a job: its node runs are aborted and their processes killed."""
    client = _client(server, token, org)
    data = _call(client.stop_job, job_id, reason)
    console.print(f"job {job_id}: {styled(data['status'])}")


def register(app: typer.Typer) -> None:
    app.command()(login)
    app.command(context_settings={"allow_interspersed_args": False})(run)
    app.command()(jobs)
    app.command()(job)
    app.command()(nodes)
    app.command()(stop)
