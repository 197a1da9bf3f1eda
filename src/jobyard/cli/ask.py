"""``jobyard ask``: from inside a running job, ask a person for input and wait for it."""

from __future__ import annotations

import json
import os
import socket
from typing import Annotated, Any

import typer


def ask(
    field: Annotated[
        list[str],
        typer.Option("--field", help="NAME or NAME:TYPE (text, number, date, select); repeat."),
    ],
    prompt: Annotated[str, typer.Option(help="What to tell the person.")] = "",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for an answer.")] = 3600,
    option: Annotated[
        list[str] | None, typer.Option("--option", help="A choice for a select field; repeat.")
    ] = None,
) -> None:
    """Ask for input from inside a job; print the answer (one value, or JSON for several).

    Exits 0 with the answer, 1 when nobody answered in time or the request was refused.
    """
    path = os.environ.get("JOBYARD_INPUT_SOCKET")
    job, attempt = os.environ.get("JOBYARD_JOB_ID"), os.environ.get("JOBYARD_ATTEMPT")
    if not path or not job or not attempt:
        typer.secho("error: jobyard ask works only inside a job run by jobyard agent", err=True)
        raise typer.Exit(2)
    fields: list[dict[str, Any]] = []
    for spec in field:
        name, _, kind = spec.partition(":")
        entry: dict[str, Any] = {"name": name, "type": kind or "text"}
        if entry["type"] == "select":
            entry["options"] = list(option or [])
        fields.append(entry)
    request = {
        "job": int(job),
        "attempt": int(attempt),
        "fields": fields,
        "prompt": prompt,
        "timeout": timeout,
    }
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        sock.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    reply = json.loads(data or b"{}")
    if reply.get("status") != "answered":
        reason = reply.get("error") or reply.get("status") or "no answer"
        typer.secho(f"no input: {reason}", err=True)
        raise typer.Exit(1)
    values = reply.get("values") or {}
    if len(fields) == 1:
        value = values.get(fields[0]["name"])
        typer.echo(value if isinstance(value, str) else json.dumps(value))
    else:
        typer.echo(json.dumps(values))
