"""Runs' stdout and stderr as append-only chunks (see ``domain/outputs`` for the shape).

An append costs a constant number of statements whatever the stream's length: read the
newest chunk, insert one or two chunks, delete the tail chunks that fell out of the tail.
No stored value is ever rewritten. The index leads with (run, stream, head) so that
neither finding the newest chunk nor trimming the tail walks the head's rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from jobyard.domain.outputs import Chunk, OutputCaps, Stored, plan_append
from jobyard.store.schema import node_runs, output_chunks

_C = output_chunks.c
_COLUMNS = (_C.byte_pos, _C.line_pos, _C.size, _C.lines, _C.head, _C.data)


def _chunk(row: Sequence[Any]) -> Chunk:
    pos, line, size, lines, head, data = tuple(row)
    return Chunk(int(pos), int(line), int(size), int(lines), bool(head), data)


def _of(run_id: int, stream: str) -> sa.ColumnElement[bool]:
    return sa.and_(_C.run_id == run_id, _C.stream == stream)


class OutputsRepo:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def last(self, run_id: int, stream: str) -> Chunk | None:
        """The newest chunk of a stream (where the next one starts): its newest tail
        chunk, else its newest head chunk (tail chunks all come after the head)."""
        for head in (False, True):
            q = (
                sa.select(*_COLUMNS)
                .where(_of(run_id, stream), _C.head == head)
                .order_by(_C.byte_pos.desc())
                .limit(1)
            )
            row = (await self.conn.execute(q)).first()
            if row is not None:
                return _chunk(row)
        return None

    async def append(self, run_id: int, stream: str, text: str, caps: OutputCaps) -> Stored:
        """Add ``text`` to a run's stream within its caps: whether bytes were dropped, and
        where the stream ends now."""
        last = await self.last(run_id, stream)
        plan = plan_append(last, text, caps)
        if plan.chunks:
            await self.conn.execute(
                output_chunks.insert(),
                [
                    {
                        "run_id": run_id,
                        "stream": stream,
                        "byte_pos": c.offset,
                        "line_pos": c.line,
                        "size": c.size,
                        "lines": c.lines,
                        "head": c.head,
                        "data": c.data,
                    }
                    for c in plan.chunks
                ],
            )
        dropped = plan.dropped
        if plan.trim_before is not None:
            gone = await self.conn.execute(
                output_chunks.delete().where(
                    _of(run_id, stream),
                    _C.head == sa.false(),
                    _C.byte_pos < plan.trim_before,
                    _C.byte_pos + _C.size <= plan.trim_before,
                )
            )
            dropped = dropped or bool(gone.rowcount)
        if dropped:
            await self.conn.execute(
                node_runs.update()
                .where(node_runs.c.id == run_id, node_runs.c.truncated == sa.false())
                .values(truncated=True)
            )
        return Stored(dropped, (last.end if last else 0) + len(text.encode()))

    async def chunks(self, run_id: int, stream: str, after: int = 0) -> list[Chunk]:
        """A stream's kept chunks in order (those starting at byte ``after`` or later)."""
        q = (
            sa.select(*_COLUMNS)
            .where(_of(run_id, stream), _C.byte_pos >= after)
            .order_by(_C.head.desc(), _C.byte_pos)  # the index's order: head, then tail
        )
        return [_chunk(r) for r in await self.conn.execute(q)]

    async def tail(self, run_id: int, stream: str, limit: int) -> list[Chunk]:
        """The newest chunks of a stream that hold its last ``limit`` bytes, in order."""
        behind = sa.func.sum(_C.size).over(order_by=_C.byte_pos.desc()) - _C.size
        sub = sa.select(*_COLUMNS, behind.label("behind")).where(_of(run_id, stream)).subquery()
        q = (
            sa.select(*(sub.c[c.name] for c in _COLUMNS))
            .where(sub.c.behind < limit)
            .order_by(sub.c.byte_pos)
        )
        return [_chunk(r) for r in await self.conn.execute(q)]

    async def has_any(self, run_ids: Sequence[int]) -> bool:
        if not run_ids:
            return False
        q = sa.select(_C.id).where(_C.run_id.in_(list(run_ids))).limit(1)
        return (await self.conn.execute(q)).first() is not None
