"""Every command of the CLI is either a read command, which takes ``-o json|yaml|table`` and
has a schema for its JSON (checked against a real server in tests/e2e/test_cli_live.py), or
one of the commands that act. A new command must be put on one side."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import typer

from jobyard.cli.main import app
from jobyard.wire.listing import SCHEMAS

# Commands that change something, start something or write a file (not read commands).
ACTIONS = {
    "agent",
    "ask",
    "login",
    "run",
    "stop",
    "apply",
    "export",  # writes definitions as files: --format yaml|json (JOBYARD_OUTPUT), -o FILE
    "serve",
    "migrate",
    "up",
    "admin create-org",
    "admin create-user",
    "admin create-token",
    "admin backup",
    "admin restore",
    "admin new-secret-key",  # prints a new key (made, not read)
    "admin rotate-secret-key",
    "admin chef-key add",
    "admin chef-key remove",
    "task run",
    "stack run",
}


def _walk(cmd: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    if hasattr(cmd, "commands"):
        for name, sub in cmd.commands.items():
            yield from _walk(sub, (*prefix, name))
    else:
        yield " ".join(prefix), cmd


def test_every_command_is_a_read_command_with_output_or_an_action() -> None:
    commands = dict(_walk(typer.main.get_command(app)))
    assert set(commands) == set(SCHEMAS) | ACTIONS
    for name in SCHEMAS:
        output = next(p for p in commands[name].params if "--output" in p.opts)
        assert "-o" in output.opts and output.envvar == "JOBYARD_OUTPUT", name
        assert output.help and "json" in output.help, name
