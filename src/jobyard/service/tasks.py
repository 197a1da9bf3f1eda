"""Task use cases: define, read, change, delete and run tasks.

Viewers read tasks; users create tasks and run them; a task's creator or an admin changes
or deletes it. Running a task makes a job (``service.launches``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from jobyard.domain.accounts import Role, require
from jobyard.domain.errors import Conflict, Invalid, NotFound
from jobyard.domain.records import Page, Principal
from jobyard.domain.targets import Target
from jobyard.domain.tasks import Task, TaskSpec
from jobyard.service.context import Services
from jobyard.service.events import record
from jobyard.service.jobs import JobView
from jobyard.service.launches import Origin, launch
from jobyard.service.secrets import seal_defaults, with_sealed_env
from jobyard.store import Tx
from jobyard.store.tasks import task_values


async def people(
    svc: Services, who: Principal, refs: Sequence[int | str], field: str
) -> tuple[int, ...]:
    """User ids of members of the caller's organization, given ids or emails."""
    out: list[int] = []
    async with svc.db.read() as tx:
        members = {m.user_id: m for m in await tx.accounts.members(who.org_id)}
        by_email = {m.email.lower(): m.user_id for m in members.values()}
    for ref in refs:
        if isinstance(ref, int) and not isinstance(ref, bool):
            if ref not in members:
                raise Invalid(f"user {ref} is not a member of this organization", field)
            user_id = ref
        elif isinstance(ref, str) and ref.strip().lower() in by_email:
            user_id = by_email[ref.strip().lower()]
        elif (
            isinstance(ref, str)
            and ref.strip().isascii()
            and ref.strip().isdigit()
            and int(ref) in members
        ):
            user_id = int(ref)
        else:
            raise Invalid(f"{ref!r} is not a member of this organization", field)
        if user_id not in out:
            out.append(user_id)
    return tuple(out)


async def task_of(tx: Tx, who: Principal, task_id: int, *, lock: bool = False) -> Task:
    task = await tx.tasks.get(who.org_id, task_id, for_update=lock)
    if task is None:
        raise NotFound(f"no task {task_id}")
    return task


def may_change(who: Principal, task: Task, action: str) -> None:
    require(who.role, Role.USER, action)
    if task.created_by != who.user_id and who.role is not Role.ADMIN:
        raise NotFound(f"no task {task.id} of yours; only its creator or an admin may do that")


async def _record(
    svc: Services, tx: Tx, task: Task, type: str, who: Principal, **data: Any
) -> None:
    await record(
        svc,
        tx,
        org_id=task.org_id,
        kind="task",
        subject_id=task.id,
        type=type,
        actor=who.actor,
        data=data or None,
        now=svc.clock.now(),
    )


async def _check_people(tx: Tx, org_id: int, spec: TaskSpec) -> None:
    for field, ids in (("approvers", spec.approvers), ("recipients", spec.recipients)):
        for user_id in ids:
            if await tx.accounts.role_of(org_id, user_id) is None:
                raise Invalid(f"user {user_id} is not a member of this organization", field)


async def create_task(svc: Services, who: Principal, spec: TaskSpec) -> Task:
    require(who.role, Role.USER, "creating a task")
    spec = seal_defaults(svc.secrets, spec, None)
    now = svc.clock.now()
    async with svc.db.begin() as tx:
        if await tx.tasks.by_name(who.org_id, spec.name) is not None:
            raise Conflict(f"a task named {spec.name!r} exists already")
        await _check_people(tx, who.org_id, spec)
        task = await tx.tasks.insert(
            {
                **task_values(spec),
                "org_id": who.org_id,
                "created_by": who.user_id,
                "created_at": now,
                "updated_at": now,
            }
        )
        await _record(svc, tx, task, "task.created", who)
        return task


async def get_task(svc: Services, who: Principal, task_id: int) -> Task:
    require(who.role, Role.VIEWER, "reading a task")
    async with svc.db.read() as tx:
        return await task_of(tx, who, task_id)


async def get_task_by_name(svc: Services, who: Principal, name: str) -> Task:
    require(who.role, Role.VIEWER, "reading a task")
    async with svc.db.read() as tx:
        task = await tx.tasks.by_name(who.org_id, name)
        if task is None:
            raise NotFound(f"no task named {name!r}")
        return task


async def list_tasks(
    svc: Services, who: Principal, *, type: str | None = None, offset: int = 0, limit: int = 20
) -> Page[Task]:
    require(who.role, Role.VIEWER, "listing tasks")
    async with svc.db.read() as tx:
        return await tx.tasks.page(who.org_id, type=type, offset=offset, limit=limit)


async def update_task(svc: Services, who: Principal, task_id: int, changes: dict[str, Any]) -> Task:
    """Change some fields of a task; the whole result is checked again. Jobs made before
    keep what they were made with."""
    async with svc.db.begin() as tx:
        task = await task_of(tx, who, task_id, lock=True)
        may_change(who, task, "changing a task")
        with_sealed_env(svc.secrets, task.spec.env, changes)
        try:
            spec = dataclasses.replace(task.spec, **changes)
        except TypeError as exc:
            raise Invalid(f"unknown field in the change: {exc}") from None
        spec = seal_defaults(svc.secrets, spec, task.spec)
        if spec.name != task.name and await tx.tasks.by_name(who.org_id, spec.name):
            raise Conflict(f"a task named {spec.name!r} exists already")
        await _check_people(tx, who.org_id, spec)
        updated = await tx.tasks.update(
            task.id, {**task_values(spec), "updated_at": svc.clock.now()}
        )
        await _record(svc, tx, updated, "task.updated", who, fields=sorted(changes))
        return updated


async def delete_task(svc: Services, who: Principal, task_id: int) -> None:
    """Delete a task no stack or trigger uses; its jobs stay, with their history."""
    async with svc.db.begin() as tx:
        task = await task_of(tx, who, task_id, lock=True)
        may_change(who, task, "deleting a task")
        users = await tx.tasks.users_of(task.id)
        users += [f"stack {n!r}" for n in await tx.stacks.using_task(task.org_id, task.id)]
        if users:
            raise Conflict(
                f"task {task.name!r} is used by {', '.join(users[:5])}: "
                "delete or change those first"
            )
        await _record(svc, tx, task, "task.deleted", who, name=task.name)
        await tx.tasks.delete(task.id)


async def run_task(
    svc: Services,
    who: Principal,
    task_id: int,
    arguments: Any = None,
    *,
    target: Target | None = None,
    stack_id: int | None = None,
) -> JobView:
    """Start a run of a task: checks the arguments, applies the concurrency policy (409 when
    it forbids another run), and returns the job (``onhold`` while it waits)."""
    require(who.role, Role.USER, "running a task")

    async def start(tx: Tx) -> JobView:
        task = await task_of(tx, who, task_id)
        stack = None
        if stack_id is not None:
            stack = await tx.stacks.get(who.org_id, stack_id)
            if stack is None:
                raise NotFound(f"no stack {stack_id}")
        launched = await launch(
            svc,
            tx,
            org_id=who.org_id,
            task=task,
            stack=stack,
            arguments=arguments,
            origin=Origin(actor=who.actor, created_by=who.user_id),
            target=target,
        )
        assert launched.job is not None
        return JobView(launched.job, await tx.jobs.runs(launched.job.id))

    return await svc.db.write(start)
