"""Retention policies, and the finished jobs whose output a policy lets go."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from jobyard.domain.jobs import JOB_TERMINAL
from jobyard.domain.retention import RetentionPolicy
from jobyard.store.retention_schema import retention_policies as rp
from jobyard.store.schema import jobs, node_runs, output_chunks

_DONE = [s.value for s in JOB_TERMINAL]


class RetentionRepo:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def get(self, org_id: int) -> RetentionPolicy | None:
        """The organization's policy, if it has one."""
        row = (
            await self.conn.execute(
                sa.select(rp.c.keep_jobs_days, rp.c.keep_output_days).where(rp.c.org_id == org_id)
            )
        ).first()
        return RetentionPolicy(org_id, row[0], row[1]) if row else None

    async def put(self, policy: RetentionPolicy, now: dt.datetime) -> None:
        """Set the organization's policy (replacing the one it had)."""
        await self.conn.execute(rp.delete().where(rp.c.org_id == policy.org_id))
        await self.conn.execute(
            rp.insert().values(
                org_id=policy.org_id,
                keep_jobs_days=policy.keep_jobs_days,
                keep_output_days=policy.keep_output_days,
                updated_at=now,
            )
        )

    async def all(self) -> list[RetentionPolicy]:
        """Every policy that keeps something for a limited time."""
        rows = (
            await self.conn.execute(
                sa.select(rp.c.org_id, rp.c.keep_jobs_days, rp.c.keep_output_days).where(
                    sa.or_(rp.c.keep_jobs_days.is_not(None), rp.c.keep_output_days.is_not(None))
                )
            )
        ).all()
        return [RetentionPolicy(int(o), j, k) for o, j, k in rows]

    async def jobs_with_output_before(
        self, org_id: int, before: dt.datetime, limit: int
    ) -> list[int]:
        """Finished jobs that ended before ``before`` and still keep some output."""
        has_output = (
            sa.select(output_chunks.c.id)
            .join(node_runs, node_runs.c.id == output_chunks.c.run_id)
            .where(node_runs.c.job_id == jobs.c.id)
            .exists()
        )
        query = (
            sa.select(jobs.c.id)
            .where(
                jobs.c.org_id == org_id,
                jobs.c.status.in_(_DONE),
                jobs.c.finished_at < before,
                has_output,
            )
            .order_by(jobs.c.id)
            .limit(limit)
        )
        return [int(i) for i in (await self.conn.execute(query)).scalars()]

    async def clear_output(self, job_ids: Sequence[int]) -> None:
        """Drop the stored stdout and stderr of these jobs' node runs."""
        if job_ids:
            runs = sa.select(node_runs.c.id).where(node_runs.c.job_id.in_(list(job_ids)))
            await self.conn.execute(output_chunks.delete().where(output_chunks.c.run_id.in_(runs)))
