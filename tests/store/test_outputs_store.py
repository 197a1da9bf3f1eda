"""Store contract for output chunks, on SQLite and PostgreSQL: append-only pieces, the
head kept, a rolling tail, the marker between, and the migration of older output."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import sqlalchemy as sa
from alembic import command

from jobyard.domain.outputs import OutputCaps
from jobyard.domain.records import NodeRun
from jobyard.service.context import Services
from jobyard.service.outputs import stream_text, tail_view
from jobyard.store import Database
from jobyard.store.migrate import alembic_config
from tests.store.test_jobs_store import insert, job_row, world

CAPS = OutputCaps(head=10, tail=20)
MARKER = (
    "[jobyard: 470 bytes (94 lines) of output dropped here;"
    " the head and the tail of the stream are kept]\n"
)


async def _run(svc: Services) -> NodeRun:
    w = await world(svc)
    async with svc.db.begin() as tx:
        job = await insert(tx, job_row(w.org, w.ann))
        run = await tx.jobs.run(job.id, "a")
    assert run is not None
    return run


async def _reread(svc: Services, run: NodeRun) -> NodeRun:
    async with svc.db.read() as tx:
        again = await tx.jobs.run(run.job_id, run.node_name)
    assert again is not None
    return again


async def test_small_output_is_kept_whole(any_svc: Services) -> None:
    run = await _run(any_svc)
    async with any_svc.db.begin() as tx:
        assert await tx.outputs.append(run.id, "stdout", "héllo ", CAPS) == (False, 7)
        assert await tx.outputs.append(run.id, "stdout", "wörld\n", CAPS) == (False, 14)
        assert await tx.outputs.append(run.id, "stderr", "e1\n", CAPS) == (False, 3)
    async with any_svc.db.read() as tx:
        assert await stream_text(tx, run.id, "stdout") == "héllo wörld\n"
        assert await stream_text(tx, run.id, "stderr") == "e1\n"
        chunks = await tx.outputs.chunks(run.id, "stdout")
    # "héllo " is 7 bytes: the 10-byte head ends inside "wörld", on a character boundary.
    assert [(c.offset, c.size, c.head, c.data) for c in chunks] == [
        (0, 7, True, "héllo "),
        (7, 3, True, "wö"),
        (10, 4, False, "rld\n"),
    ]
    assert (await _reread(any_svc, run)).truncated is False


async def test_long_output_keeps_head_and_tail_around_a_marker(any_svc: Services) -> None:
    run = await _run(any_svc)
    async with any_svc.db.begin() as tx:
        for i in range(100):  # 500 bytes, 100 lines
            await tx.outputs.append(run.id, "stdout", f"{i:04d}\n", CAPS)
        await tx.outputs.append(run.id, "stderr", "the final error\n", CAPS)
    async with any_svc.db.read() as tx:
        text = await stream_text(tx, run.id, "stdout")
        err = await stream_text(tx, run.id, "stderr")
        kept = await tx.outputs.chunks(run.id, "stdout")
        shown = await tail_view(tx, run.id, "stdout", 12)
        since = await tail_view(tx, run.id, "stdout", 12, after=490)
        stale = await tail_view(tx, run.id, "stdout", 12, after=100)  # dropped since
    assert text == "0000\n0001\n" + MARKER + "0096\n0097\n0098\n0099\n"
    assert err == "the final error\n"  # its own caps: the flood on stdout does not touch it
    assert (await _reread(any_svc, run)).truncated is True
    # Only the head and the rolling tail are stored.
    assert sum(c.size for c in kept) == 30
    assert (shown.text, shown.end, shown.reset, shown.whole) == ("0098\n0099\n", 500, True, False)
    assert (since.text, since.end, since.reset) == ("0098\n0099\n", 500, False)
    assert (stale.text, stale.reset) == ("0098\n0099\n", True)


async def test_one_chunk_longer_than_both_caps(any_svc: Services) -> None:
    run = await _run(any_svc)
    async with any_svc.db.begin() as tx:
        stored = await tx.outputs.append(run.id, "stdout", "a" * 10 + "b" * 70 + "c" * 20, CAPS)
    assert stored == (True, 100)  # the end counts every byte printed, kept or not
    async with any_svc.db.read() as tx:
        text = await stream_text(tx, run.id, "stdout")
    assert text == "a" * 10 + "\n[jobyard: 70 bytes (0 lines)" + text.split("(0 lines)")[1]
    assert text.endswith("]\n" + "c" * 20)


def _old_rows(conn: sa.Connection) -> None:
    """A job with output as the first revision stored it (in node_runs columns)."""
    meta = sa.MetaData()
    orgs, jobs, runs = (
        sa.Table(t, meta, autoload_with=conn) for t in ("organizations", "jobs", "node_runs")
    )
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    org = conn.execute(
        orgs.insert().values(name="o", display_name="O", created_at=now)
    ).inserted_primary_key[0]
    job = conn.execute(
        jobs.insert().values(
            org_id=org,
            command="x",
            target={"nodes": ["a", "b", "c"]},
            quorum="100%",
            env={},
            status="complete",
            meta={},
            created_at=now,
            updated_at=now,
        )
    ).inserted_primary_key[0]
    conn.execute(
        runs.insert(),
        [
            {"job_id": job, "org_id": org, "node_name": name, "status": "succeeded", "stdout": out,
             "stderr": err, "created_at": now, "updated_at": now}
            for name, out, err in OLD
        ],
    )  # fmt: skip


OLD = [("a", "héllo\nwörld\n", "warn\n"), ("b", "", ""), ("c", "x" * 5000, "")]


def test_old_output_moves_into_chunks_on_sqlite(tmp_path: Path) -> None:
    asyncio.run(_migrate_old_output(f"sqlite:///{tmp_path / 'old.db'}"))


def test_old_output_moves_into_chunks_on_postgresql(pg_blank_url: str) -> None:
    asyncio.run(_migrate_old_output(pg_blank_url))


async def _migrate_old_output(url: str) -> None:
    """The migration to chunks, on a database holding output in node_runs columns."""
    db = Database(url)
    try:
        async with db.engine.connect() as conn:
            await conn.run_sync(lambda c: command.upgrade(alembic_config(c), "0001"))
            await conn.run_sync(_old_rows)
            await conn.commit()
        await db.migrate()
        async with db.read() as tx:
            columns = await tx.conn.run_sync(
                lambda c: {col["name"] for col in sa.inspect(c).get_columns("node_runs")}
            )
            got = {}
            for name, _out, _err in OLD:
                run = await tx.jobs.run(1, name)
                assert run is not None
                got[name] = (
                    await stream_text(tx, run.id, "stdout"),
                    await stream_text(tx, run.id, "stderr"),
                )
    finally:
        await db.close()
    assert "stdout" not in columns and "stderr" not in columns
    assert got == {name: (out, err) for name, out, err in OLD}
