"""Statement and transaction counters of one engine, for benchmarks and diagnosis.

Off by default (``JOBYARD_COUNT_STATEMENTS=true`` turns them on): the listeners make
SQLAlchemy dispatch events on every execution. When on, ``/metrics`` shows them as
``jobyard_db_statements_total``, ``jobyard_db_statement_rows_total`` (rows sent, an
``executemany`` of 10 rows is 1 statement and 10 rows) and ``jobyard_db_transactions_total``
by how they ended (``commit``, ``rollback``: a read ends with a rollback).

They count what this process sends through SQLAlchemy, so the same code counts the same way
on SQLite and PostgreSQL; SQLite's ``BEGIN`` / ``BEGIN IMMEDIATE`` are statements here,
PostgreSQL's ``BEGIN`` is sent by the driver and is not.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.ext.asyncio import AsyncEngine


@dataclass
class Counts:
    statements: int = 0
    rows: int = 0
    begun: int = 0
    commits: int = 0
    rollbacks: int = 0

    def lines(self) -> Iterator[str]:
        """Prometheus text exposition of the counters."""
        yield "# TYPE jobyard_db_statements_total counter"
        yield f"jobyard_db_statements_total {self.statements}"
        yield "# TYPE jobyard_db_statement_rows_total counter"
        yield f"jobyard_db_statement_rows_total {self.rows}"
        yield "# TYPE jobyard_db_transactions_begun_total counter"
        yield f"jobyard_db_transactions_begun_total {self.begun}"
        yield "# TYPE jobyard_db_transactions_total counter"
        yield f'jobyard_db_transactions_total{{end="commit"}} {self.commits}'
        yield f'jobyard_db_transactions_total{{end="rollback"}} {self.rollbacks}'


def install(engine: AsyncEngine) -> Counts:
    """Count every statement and transaction ``engine`` runs from now on."""
    counts = Counts()
    count_statements(engine.sync_engine, counts)
    count_transactions(engine.sync_engine, counts)
    return counts


def count_transactions(engine: Engine, counts: Counts) -> None:
    """Count the transactions ``engine`` begins, commits and rolls back into ``counts``."""

    @event.listens_for(engine, "begin")
    def on_begin(_conn: Any) -> None:
        counts.begun += 1

    @event.listens_for(engine, "commit")
    def on_commit(_conn: Any) -> None:
        counts.commits += 1

    @event.listens_for(engine, "rollback")
    def on_rollback(_conn: Any) -> None:
        counts.rollbacks += 1


def count_statements(engine: Engine, counts: Counts) -> None:
    """Count the statements ``engine`` sends into ``counts`` (the quick reads' own SQLite
    connection: no transactions there to count)."""

    @event.listens_for(engine, "before_cursor_execute")
    def on_execute(
        _conn: Any, _cursor: Any, _stmt: str, params: Any, _ctx: Any, many: bool
    ) -> None:
        counts.statements += 1
        counts.rows += len(params) if many else 1
