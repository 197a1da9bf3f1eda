"""Stack use cases: a named place to run (a target with environment), optionally with what
to run there (a task, or a command of its own).

Viewers read; users create and run; the creator or an admin changes or deletes. A stack
that a trigger uses cannot be deleted (409).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from jobyard.domain.accounts import Role, require
from jobyard.domain.errors import Conflict, Invalid, NotFound
from jobyard.domain.records import Page, Principal
from jobyard.domain.targets import Target
from jobyard.domain.tasks import TaskSpec
from jobyard.domain.triggers import Stack
from jobyard.service.context import Services
from jobyard.service.jobs import JobView
from jobyard.service.launches import Origin, launch
from jobyard.service.schedules import event, may_change
from jobyard.store import Tx


async def _stack(tx: Tx, who: Principal, stack_id: int) -> Stack:
    found = await tx.stacks.get(who.org_id, stack_id)
    if found is None:
        raise NotFound(f"no stack {stack_id}")
    return found


async def _check_stack(
    tx: Tx, who: Principal, name: str, env: dict[str, str], task_id: int | None, command: str | None
) -> None:
    if not 1 <= len(name) <= 200:
        raise Invalid("a stack name is 1 to 200 characters", "name")
    # The job rules for environment variables and commands, through a throwaway task spec.
    TaskSpec(name=name, command=command or "true", env=env)
    if command is not None and not command.strip():
        raise Invalid("a stack's command must not be empty (leave it out instead)", "command")
    if task_id is not None and await tx.tasks.get(who.org_id, task_id) is None:
        raise NotFound(f"no task {task_id}")


async def create_stack(
    svc: Services,
    who: Principal,
    name: str,
    target: Target,
    *,
    env: dict[str, str] | None = None,
    description: str = "",
    task_id: int | None = None,
    command: str | None = None,
) -> Stack:
    require(who.role, Role.USER, "creating a stack")
    now = svc.clock.now()
    async with svc.db.begin() as tx:
        await _check_stack(tx, who, name, env or {}, task_id, command)
        if await tx.stacks.by_name(who.org_id, name):
            raise Conflict(f"a stack named {name!r} exists already")
        stack = await tx.stacks.insert(
            {
                "org_id": who.org_id,
                "name": name,
                "description": description,
                "target": target.as_json(),
                "env": dict(env or {}),
                "task_id": task_id,
                "command": command,
                "created_by": who.user_id,
                "created_at": now,
                "updated_at": now,
            }
        )
        await event(svc, tx, who, "stack", stack.id, "stack.created")
        return stack


async def get_stack(svc: Services, who: Principal, stack_id: int) -> Stack:
    require(who.role, Role.VIEWER, "reading a stack")
    async with svc.db.read() as tx:
        return await _stack(tx, who, stack_id)


async def get_stack_by_name(svc: Services, who: Principal, name: str) -> Stack:
    require(who.role, Role.VIEWER, "reading a stack")
    async with svc.db.read() as tx:
        found = await tx.stacks.by_name(who.org_id, name)
        if found is None:
            raise NotFound(f"no stack named {name!r}")
        return found


async def list_stacks(
    svc: Services, who: Principal, offset: int = 0, limit: int = 20
) -> Page[Stack]:
    require(who.role, Role.VIEWER, "listing stacks")
    async with svc.db.read() as tx:
        return await tx.stacks.page(who.org_id, offset, limit)


_STACK_FIELDS = {"name", "target", "env", "description", "task_id", "command"}


async def update_stack(
    svc: Services, who: Principal, stack_id: int, changes: dict[str, Any]
) -> Stack:
    unknown = set(changes) - _STACK_FIELDS
    if unknown:
        raise Invalid(f"unknown field {sorted(unknown)[0]!r} in the change")
    async with svc.db.begin() as tx:
        stack = await _stack(tx, who, stack_id)
        may_change(who, stack.created_by, f"stack {stack_id}", "changing a stack")
        merged = dataclasses.replace(stack, **changes)
        await _check_stack(tx, who, merged.name, merged.env, merged.task_id, merged.command)
        if merged.name != stack.name and await tx.stacks.by_name(who.org_id, merged.name):
            raise Conflict(f"a stack named {merged.name!r} exists already")
        updated = await tx.stacks.update(
            stack.id,
            {
                "name": merged.name,
                "description": merged.description,
                "target": merged.target.as_json(),
                "env": dict(merged.env),
                "task_id": merged.task_id,
                "command": merged.command,
                "updated_at": svc.clock.now(),
            },
        )
        await event(svc, tx, who, "stack", stack.id, "stack.updated", fields=sorted(changes))
        return updated


async def delete_stack(svc: Services, who: Principal, stack_id: int) -> None:
    async with svc.db.begin() as tx:
        stack = await _stack(tx, who, stack_id)
        may_change(who, stack.created_by, f"stack {stack_id}", "deleting a stack")
        users = await tx.stacks.users_of(stack.id)
        if users:
            raise Conflict(
                f"stack {stack.name!r} is used by trigger(s) {users[:5]}: delete them first"
            )
        await event(svc, tx, who, "stack", stack.id, "stack.deleted", name=stack.name)
        await tx.stacks.delete(stack.id)


async def run_stack(svc: Services, who: Principal, stack_id: int, arguments: Any = None) -> JobView:
    """Run a stack now: its task (or its own command) on its target with its environment."""
    require(who.role, Role.USER, "running a stack")
    async with svc.db.begin() as tx:
        stack = await _stack(tx, who, stack_id)
        task = await tx.tasks.get(who.org_id, stack.task_id) if stack.task_id else None
        launched = await launch(
            svc,
            tx,
            org_id=who.org_id,
            task=task,
            stack=stack,
            arguments=arguments,
            origin=Origin(actor=who.actor, created_by=who.user_id),
        )
        assert launched.job is not None
        return JobView(launched.job, await tx.jobs.runs(launched.job.id))
