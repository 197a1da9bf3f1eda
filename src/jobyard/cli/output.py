"""``-o json|yaml|table`` (or ``JOBYARD_OUTPUT``) for the read commands."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from typing import Annotated, Any

import typer


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


OutputOpt = Annotated[
    Format,
    typer.Option(
        "--output",
        "-o",
        envvar="JOBYARD_OUTPUT",
        case_sensitive=False,
        help="table (for people), json or yaml (stable keys: docs/cli.md).",
    ),
]


def emit(data: Any, fmt: Format) -> bool:
    """Print ``data`` as JSON or YAML and return True; False for a table (the caller's)."""
    if fmt is Format.JSON:
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        return True
    if fmt is Format.YAML:
        import yaml

        sys.stdout.write(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
        return True
    return False
