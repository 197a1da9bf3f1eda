"""Where jobs came from and what they wait for: their task, their task run (trigger,
stack, attempt, hold), read in one transaction for a page of jobs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from jobyard.domain.tasks import Task, TaskRun
from jobyard.service.context import Services
from jobyard.service.jobs import JobView


@dataclass(frozen=True)
class Origin:
    """A job's task (None for a job started from a bare command) and its task run."""

    task: Task | None
    run: TaskRun | None

    @property
    def hold(self) -> str | None:
        return self.run.hold.value if self.run is not None and self.run.hold else None


NO_ORIGIN = Origin(None, None)


async def origins(svc: Services, views: Sequence[JobView]) -> dict[int, Origin]:
    """The origin of each job, by job id. The caller has read the jobs already (with the
    right to), so reading where they came from needs nothing more."""
    out: dict[int, Origin] = {}
    if not views:
        return out
    async with svc.db.read() as tx:
        tasks: dict[tuple[int, int], Task | None] = {}
        for view in views:
            job = view.job
            run = await tx.task_runs.get(job.id)
            task_id = job.task_id if job.task_id is not None else (run.task_id if run else None)
            task = None
            if task_id is not None:
                key = (job.org_id, task_id)
                if key not in tasks:
                    tasks[key] = await tx.tasks.get(job.org_id, task_id)
                task = tasks[key]
            out[job.id] = Origin(task, run)
    return out
