"""Where sealed secret values are stored, and rewriting them all (key rotation)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from jobyard.domain.secrets import SEALED_PREFIX
from jobyard.store.schema import jobs
from jobyard.store.tasks_schema import input_requests, stack_runs, stacks, tasks, triggers

# Every column that may hold a sealed value, at any depth of its JSON.
SEALED_COLUMNS: tuple[tuple[sa.Table, tuple[str, ...]], ...] = (
    (jobs, ("env", "argv", "arguments")),
    (tasks, ("env", "arguments")),
    (stacks, ("env", "steps")),
    (stack_runs, ("env", "steps")),
    (triggers, ("arguments",)),
    (input_requests, ("answer",)),
)


def _rewrite(value: Any, change: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return change(value) if value.startswith(SEALED_PREFIX) else value
    if isinstance(value, dict):
        return {k: _rewrite(v, change) for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite(v, change) for v in value]
    return value


async def reseal_all(conn: AsyncConnection, change: Callable[[str], str]) -> int:
    """Replace every sealed value by ``change(value)``, in the caller's transaction;
    answers how many values were rewritten."""
    done = 0

    def counting(value: str) -> str:
        nonlocal done
        done += 1
        return change(value)

    for table, names in SEALED_COLUMNS:
        cols = [table.c[n] for n in names]
        holds = sa.or_(*(sa.cast(c, sa.Text).like(f"%{SEALED_PREFIX}%") for c in cols))
        rows = (await conn.execute(sa.select(table.c.id, *cols).where(holds))).all()
        for row in rows:
            values = {n: _rewrite(getattr(row, n), counting) for n in names}
            changed = {n: v for n, v in values.items() if v != getattr(row, n)}
            if changed:
                await conn.execute(sa.update(table).where(table.c.id == row.id).values(**changed))
    return done
