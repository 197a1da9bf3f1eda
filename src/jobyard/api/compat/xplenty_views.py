"""How Xplenty shows jobs, packages (native tasks) and schedules (native triggers).

Pure renderings: the routes (``xplenty.py``) read what is needed through the services
and pass it here with the links of the request (absolute, as Xplenty's server gives them).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jobyard.domain.dialects import xplenty
from jobyard.domain.outcomes import RUN_FAILED, job_outcome
from jobyard.domain.records import Cluster
from jobyard.domain.tasks import Task
from jobyard.domain.triggers import SavedSchedule, Stack, Trigger
from jobyard.service.jobs import JobView


@dataclass(frozen=True)
class Links:
    """Where things are: the account's API base and the site (dashboard) base."""

    api: str
    site: str


def time_text(when: dt.datetime | None) -> str | None:
    if when is None:
        return None
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def creator(links: Links, user_id: int | None, names: Mapping[int, str]) -> Any:
    if user_id is None:
        return None
    return {
        "type": "User",
        "id": user_id,
        "display_name": names.get(user_id),
        "url": f"{links.api}/user",
    }


# -- jobs


def run_failed(view: JobView) -> bool:
    return job_outcome(view.job, view.runs).failed > 0


def job_word(view: JobView) -> str:
    return xplenty.job_status(view.job.status, run_failed(view))


def _progress(view: JobView) -> float:
    if view.job.status.terminal:
        return 1.0
    if not view.runs:
        return 0.0
    return round(sum(1 for r in view.runs if r.status.terminal) / len(view.runs), 4)


def _words(values: Any) -> dict[str, str]:
    """Argument values as variables: text, and no entry for a value not given."""
    if not isinstance(values, Mapping):
        return {}
    return {str(k): str(v) for k, v in values.items() if v is not None}


def variables(view: JobView) -> tuple[dict[str, str], dict[str, str]]:
    """A job's ``(variables, dynamic_variables)``: as sent through Xplenty; for a run of a
    package (task), its argument values; else the job's environment."""
    job = view.job
    mine = job.meta.get("xplenty") or {}
    if "variables" in mine:
        return dict(mine["variables"]), dict(mine.get("dynamic_variables") or {})
    if job.task_id is not None:
        return _words(job.arguments), {}
    return dict(job.env), {}


def job(
    links: Links,
    view: JobView,
    outputs_count: int,
    names: Mapping[int, str],
    status: str | None = None,
) -> dict[str, Any]:
    job = view.job
    word = status or job_word(view)
    mine = job.meta.get("xplenty") or {}
    url = f"{links.api}/jobs/{job.id}"
    runtime = 0
    if job.started_at is not None:
        end = job.finished_at or dt.datetime.now(dt.UTC)
        runtime = max(int((end - job.started_at).total_seconds()), 0)
    failed = word == "failed"
    reasons = [
        f"{r.node_name}: {r.reason or r.status.value}" for r in view.runs if r.status in RUN_FAILED
    ]
    given, dynamic = variables(view)
    return {
        "id": job.id,
        "status": word,
        "variables": given,
        "dynamic_variables": dynamic,
        "owner_id": job.created_by,
        "progress": _progress(view),
        "outputs_count": outputs_count,
        "outputs": [],
        "started_at": time_text(job.started_at),
        "created_at": time_text(job.created_at),
        "failed_at": time_text(job.finished_at) if failed else None,
        # "the date and time at which the job completed (stopped, failed or completed)"
        "completed_at": time_text(job.finished_at) if job.status.terminal else None,
        "updated_at": time_text(job.updated_at),
        "cluster_id": job.cluster_id if job.cluster_id is not None else mine.get("cluster_id"),
        "package_id": job.task_id,
        "errors": "; ".join(reasons)
        if failed and reasons
        else (job.status.value if failed else None),
        "runtime_in_seconds": runtime,
        "url": url,
        "html_url": f"{links.site}/jobs/{job.id}",
        "creator": creator(links, job.created_by, names),
        "log_url": f"{url}/log",
    }


# -- packages


def package(links: Links, task: Task) -> dict[str, Any]:
    return {
        "id": task.id,
        "name": task.name,
        "description": task.spec.description,
        "variables": xplenty.package_variables(task.spec.arguments),
        "owner_id": task.created_by,
        "created_at": time_text(task.created_at),
        "updated_at": time_text(task.updated_at),
        "url": f"{links.api}/packages/{task.id}",
        "html_url": f"{links.site}/tasks/{task.id}",
        "status": xplenty.PACKAGE_STATUS,
    }


# -- schedules


@dataclass(frozen=True)
class ScheduleParts:
    """What a trigger's rendering needs besides the trigger."""

    saved: SavedSchedule
    task: Task | None
    stack: Stack | None
    cluster: Cluster | None
    runs: int
    last: JobView | None


def _trigger_variables(trigger: Trigger, task: Task) -> dict[str, str]:
    given = trigger.arguments
    if isinstance(given, (list, tuple)):
        given = {a.name: v for a, v in zip(task.spec.arguments, given, strict=False)}
    return _words(given)


def _schedule_task(trigger: Trigger, parts: ScheduleParts) -> dict[str, Any]:
    task, stack, cluster = parts.task, parts.stack, parts.cluster
    target = stack.target if stack is not None else (task.spec.target if task else None)
    nodes: int | None = None
    if target is not None:
        nodes = len(target.nodes) or target.count
    if nodes is None and cluster is not None:
        nodes = cluster.desired_nodes
    packages = []
    if task is not None:
        packages.append(
            {"package_id": str(task.id), "variables": _trigger_variables(trigger, task)}
        )
    return {
        "nodes": nodes,
        "packages": packages,
        "terminate_on_idle": cluster.terminate_on_idle if cluster is not None else False,
        "time_to_idle": cluster.time_to_idle if cluster is not None else None,
    }


def schedule(
    links: Links, trigger: Trigger, parts: ScheduleParts, now: dt.datetime
) -> dict[str, Any]:
    timing = parts.saved.schedule
    amount, unit = xplenty.interval(timing, max(now, trigger.created_at))
    start = timing.start or timing.at or trigger.created_at
    return {
        "id": trigger.id,
        "name": trigger.name or "Untitled",
        "description": xplenty.describe(timing),
        "owner_id": trigger.created_by,
        "status": xplenty.SCHEDULE_STATUS[trigger.enabled],
        "start_at": time_text(start),
        "next_run_at": time_text(trigger.next_fire_at),
        "interval_amount": amount,
        "interval_unit": unit,
        "last_run_at": time_text(parts.last.job.created_at) if parts.last else None,
        "last_run_status": job_word(parts.last) if parts.last else None,
        "execution_count": parts.runs,
        "overlap": trigger.overlap.mode.value == "allow",
        "reuse_cluster_strategy": xplenty.REUSE_CLUSTER,
        "task": _schedule_task(trigger, parts),
        "created_at": time_text(trigger.created_at),
        "updated_at": time_text(trigger.updated_at),
        "url": f"{links.api}/schedules/{trigger.id}",
        "html_url": f"{links.site}/triggers/{trigger.id}",
    }
