"""Xplenty packages (native tasks) and schedules (native triggers), read-only.

A package's variables are its task's declared arguments (with their defaults); running a
package is ``POST jobs`` (``xplenty.py``). A schedule is a trigger: its timing reads as
Xplenty's interval (``domain/dialects/xplenty.interval``), its task as the package it
runs with the trigger's arguments as variables, and its runs are the trigger's jobs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from jobyard.api.compat import xplenty_views as views
from jobyard.api.compat.xplenty_requests import (
    Svc,
    Who,
    arrange,
    every,
    ident,
    links_of,
    reply,
)
from jobyard.domain.dialects import xplenty
from jobyard.domain.errors import Invalid, NotFound
from jobyard.domain.records import Cluster, Principal
from jobyard.domain.tasks import Task
from jobyard.domain.triggers import Trigger
from jobyard.service import clusters as cluster_uc
from jobyard.service import jobs as uc
from jobyard.service import schedules as schedules_uc
from jobyard.service import stacks as stacks_uc
from jobyard.service import tasks as tasks_uc
from jobyard.service import triggers as triggers_uc
from jobyard.service.context import Services
from jobyard.store.jobs import JobFilter

# Included by the dialect's router (``xplenty.router``), which carries the prefix.
router = APIRouter()


async def _package(svc: Services, who: Principal, text_id: str) -> Task:
    try:
        return await tasks_uc.get_task(svc, who, ident(text_id, "package"))
    except NotFound:
        raise NotFound(f"package {text_id} not found") from None


@router.get("/packages", summary="List packages (tasks)")
async def list_packages(account: str, request: Request, who: Who, svc: Svc) -> Response:
    found = await every(lambda o, n: tasks_uc.list_tasks(svc, who, offset=o, limit=n))
    links = links_of(request, account)
    return reply(request, [views.package(links, t) for t in arrange(request, found)])


@router.get("/packages/{package_id}", summary="A package (task)")
async def get_package(
    account: str, package_id: str, request: Request, who: Who, svc: Svc
) -> Response:
    task = await _package(svc, who, package_id)
    return reply(request, views.package(links_of(request, account), task))


class _Parts:
    """Reads what schedules show, each thing once per request."""

    def __init__(self, svc: Services, who: Principal) -> None:
        self.svc, self.who = svc, who
        self.clusters: dict[str, Cluster] | None = None
        self.found: dict[tuple[str, int], Any] = {}

    async def _get(self, kind: str, native: int, read: Callable[[], Awaitable[Any]]) -> Any:
        if (kind, native) not in self.found:
            try:
                self.found[kind, native] = await read()
            except NotFound:  # deleted since the trigger was read
                self.found[kind, native] = None
        return self.found[kind, native]

    async def of(self, trigger: Trigger) -> views.ScheduleParts:
        svc, who = self.svc, self.who
        sid = trigger.schedule_id
        saved = await self._get("schedule", sid, lambda: schedules_uc.get_schedule(svc, who, sid))
        stack = task = cluster = None
        if trigger.stack_id is not None:
            st = trigger.stack_id
            stack = await self._get("stack", st, lambda: stacks_uc.get_stack(svc, who, st))
        task_id = (
            trigger.task_id if trigger.task_id is not None else getattr(stack, "task_id", None)
        )
        if task_id is not None:
            task = await self._get("task", task_id, lambda: tasks_uc.get_task(svc, who, task_id))
        target = stack.target if stack is not None else (task.spec.target if task else None)
        if target is not None and target.cluster:
            if self.clusters is None:
                self.clusters = {c.name: c for c in await cluster_uc.list_clusters(svc, who)}
            cluster = self.clusters.get(target.cluster)
        runs = await uc.list_jobs(svc, who, JobFilter(trigger_id=trigger.id), limit=1)
        last = runs.items[0] if runs.items else None
        return views.ScheduleParts(saved, task, stack, cluster, runs.total, last)


async def _render_schedules(
    request: Request, account: str, svc: Services, who: Principal, items: Sequence[Trigger]
) -> list[dict[str, Any]]:
    parts, links, now = _Parts(svc, who), links_of(request, account), svc.clock.now()
    return [views.schedule(links, t, await parts.of(t), now) for t in items]


@router.get("/schedules", summary="List schedules (triggers)")
async def list_schedules(account: str, request: Request, who: Who, svc: Svc) -> Response:
    status = request.query_params.get("status", "all")
    if status != "all" and status not in xplenty.SCHEDULE_FILTER:
        raise Invalid(f"status is all or one of {', '.join(xplenty.SCHEDULE_FILTER)}", "status")
    found = await every(lambda o, n: triggers_uc.list_triggers(svc, who, o, n))
    if status != "all":
        found = [t for t in found if t.enabled is xplenty.SCHEDULE_FILTER[status]]
    items = arrange(request, found)
    return reply(request, await _render_schedules(request, account, svc, who, items))


@router.get("/schedules/{schedule_id}", summary="A schedule (trigger)")
async def get_schedule(
    account: str, schedule_id: str, request: Request, who: Who, svc: Svc
) -> Response:
    try:
        trigger = await triggers_uc.get_trigger(svc, who, ident(schedule_id, "schedule"))
    except NotFound:
        raise NotFound(f"schedule {schedule_id} not found") from None
    return reply(request, (await _render_schedules(request, account, svc, who, [trigger]))[0])
