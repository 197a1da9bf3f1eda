"""Fixtures that start real jobyard processes (see ``procs.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.procs import Server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A running ``jobyard serve`` on SQLite in a fresh data directory."""
    with Server(tmp_path / "server") as s:
        yield s


@pytest.fixture
def pg_server(tmp_path: Path, pg_url: str) -> Iterator[Server]:
    """A running ``jobyard serve`` on a fresh PostgreSQL database."""
    with Server(tmp_path / "server", database_url=pg_url) as s:
        yield s
