"""Stack use cases: a named place to run (a target with environment), optionally with what
to run there (a task, or a command of its own).

Viewers read; users create and run; the creator or an admin changes or deletes. A stack
that a trigger uses cannot be deleted (409).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from jobyard.domain.accounts import Role, require
from jobyard.domain.chains import Step, StepIn, parse_step, parse_steps, references
from jobyard.domain.errors import Conflict, Invalid, NotFound
from jobyard.domain.records import Page, Principal
from jobyard.domain.targets import Target
from jobyard.domain.tasks import TaskSpec, bind_arguments
from jobyard.domain.triggers import Stack
from jobyard.service.chains import start
from jobyard.service.context import Services
from jobyard.service.jobs import JobView
from jobyard.service.launches import Origin
from jobyard.service.schedules import event, may_change
from jobyard.service.secrets import SecretBox, merge_env, seal_arguments, with_sealed_env
from jobyard.store import Tx


async def _stack(tx: Tx, who: Principal, stack_id: int) -> Stack:
    found = await tx.stacks.get(who.org_id, stack_id)
    if found is None:
        raise NotFound(f"no stack {stack_id}")
    return found


async def _check_stack(
    tx: Tx,
    who: Principal,
    name: str,
    env: dict[str, str],
    task_id: int | None,
    command: str | None,
    steps: tuple[Step, ...] = (),
) -> None:
    if not 1 <= len(name) <= 200:
        raise Invalid("a stack name is 1 to 200 characters", "name")
    # The job rules for environment variables and commands, through a throwaway task spec.
    TaskSpec(name=name, command=command or "true", env=env)
    if command is not None and not command.strip():
        raise Invalid("a stack's command must not be empty (leave it out instead)", "command")
    if task_id is not None and await tx.tasks.get(who.org_id, task_id) is None:
        raise NotFound(f"no task {task_id}")
    if steps and (task_id is not None or command is not None):
        raise Invalid(
            "a stack runs either a chain of steps or one task or command, not both", "steps"
        )


async def resolve_step(tx: Tx, who: Principal, given: StepIn, where: str, box: SecretBox) -> Step:
    """A step as stored: its task by id (a name is looked up), its arguments checked
    against the task (values read from the previous step are checked when it runs) and
    the values of its secret arguments sealed."""
    if isinstance(given.task, int):
        task = await tx.tasks.get(who.org_id, given.task)
    else:
        task = await tx.tasks.by_name(who.org_id, given.task)
    if task is None:
        raise NotFound(f"{where}: no task {given.task!r}")
    arguments = given.arguments
    if not references(arguments):
        try:
            bind_arguments(task.spec.arguments, arguments)
            arguments = seal_arguments(box, task.spec.arguments, arguments)
        except Invalid as exc:
            raise Invalid(f"{where} ({task.name}): {exc.detail}", where) from None
    return Step(
        task_id=task.id,
        arguments=arguments,
        target=given.target,
        on_failure=given.on_failure,
        name=given.name,
    )


async def chain_in(
    tx: Tx, who: Principal, steps: Any, on_failure: Any, box: SecretBox
) -> tuple[tuple[Step, ...], Step | None]:
    """Check and resolve a chain as given in a request (``steps`` None: no chain)."""
    if steps is None:
        if on_failure is not None:
            raise Invalid(
                "on_failure needs steps: it runs when a step of the chain fails", "on_failure"
            )
        return (), None
    resolved = [
        await resolve_step(tx, who, s, f"steps[{i}]", box) for i, s in enumerate(parse_steps(steps))
    ]
    failure = None
    if on_failure is not None:
        failure = await resolve_step(
            tx, who, parse_step(on_failure, "on_failure", failure_step=True), "on_failure", box
        )
    return tuple(resolved), failure


def chain_values(steps: tuple[Step, ...], on_failure: Step | None) -> dict[str, Any]:
    return {
        "steps": [s.as_json() for s in steps] if steps else None,
        "on_failure": on_failure.as_json() if on_failure else None,
    }


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
    steps: Any = None,
    on_failure: Any = None,
    extra: dict[str, Any] | None = None,
) -> Stack:
    """Define a stack; ``steps`` (and ``on_failure``) as given in a request make it a chain.
    ``extra``: more columns (a dialect's webhook settings)."""
    require(who.role, Role.USER, "creating a stack")
    # A new stack keeps no secret: the mask as a value (a stack read and sent back as a new
    # one, by any dialect) is refused here rather than stored as four dots.
    env = merge_env(svc.secrets, {}, env, None)
    now = svc.clock.now()
    async with svc.db.begin() as tx:
        chain, failure = await chain_in(tx, who, steps, on_failure, svc.secrets)
        await _check_stack(tx, who, name, env or {}, task_id, command, chain)
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
                **chain_values(chain, failure),
                **(extra or {}),
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


_STACK_FIELDS = {
    "name",
    "target",
    "env",
    "secret_env",
    "description",
    "task_id",
    "command",
    "steps",
    "on_failure",
    "public",
    "webhook",
    "webhook_method",
}


async def update_stack(
    svc: Services, who: Principal, stack_id: int, changes: dict[str, Any]
) -> Stack:
    unknown = set(changes) - _STACK_FIELDS
    if unknown:
        raise Invalid(f"unknown field {sorted(unknown)[0]!r} in the change")
    async with svc.db.begin() as tx:
        stack = await _stack(tx, who, stack_id)
        may_change(who, stack.created_by, f"stack {stack_id}", "changing a stack")
        with_sealed_env(svc.secrets, stack.env, changes)
        chained: dict[str, Any] = {}
        if "steps" in changes or "on_failure" in changes:
            steps = (
                changes.pop("steps")
                if "steps" in changes
                else [_given(s) for s in stack.steps] or None
            )
            failure = (
                changes.pop("on_failure")
                if "on_failure" in changes
                else (_given(stack.on_failure, failure=True) if stack.on_failure else None)
            )
            chain, fail_step = await chain_in(tx, who, steps, failure, svc.secrets)
            chained = chain_values(chain, fail_step)
            changes["steps"], changes["on_failure"] = chain, fail_step
        merged = dataclasses.replace(stack, **changes)
        await _check_stack(
            tx, who, merged.name, merged.env, merged.task_id, merged.command, merged.steps
        )
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
                **chained,
                **{k: getattr(merged, k) for k in ("public", "webhook", "webhook_method")},
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


def _given(step: Step, *, failure: bool = False) -> dict[str, Any]:
    """A stored step in the form a request gives it (to check it again with a change)."""
    given = step.as_json()
    given["task"] = given.pop("task_id")
    if failure:
        given.pop("on_failure")
    return given


async def run_stack(svc: Services, who: Principal, stack_id: int, arguments: Any = None) -> JobView:
    """Run a stack now: its task (or its own command) on its target with its environment,
    or the first step of its chain (the job's ``meta.stack_run`` names the stack run)."""
    require(who.role, Role.USER, "running a stack")

    async def run(tx: Tx) -> JobView:
        stack = await _stack(tx, who, stack_id)
        task = await tx.tasks.get(who.org_id, stack.task_id) if stack.task_id else None
        launched = await start(
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

    return await svc.db.write(run)


# -- public reads (Kragle's unauthenticated GET /blockstacks): one organization's public
# stacks, in their public shape, without a credential


async def public_org(svc: Services, name: str) -> int:
    """The organization an anonymous reader named (by the URL or the deployment)."""
    async with svc.db.read() as tx:
        org = await tx.accounts.org_by_name(name)
    if org is None:
        raise NotFound(f"no organization {name!r}")
    return org.id


async def _task_names(tx: Tx, org_id: int, stacks: list[Stack]) -> dict[int, str]:
    ids = {s.task_id for st in stacks for s in st.steps}
    names: dict[int, str] = {}
    for task_id in sorted(ids):
        task = await tx.tasks.get(org_id, task_id)
        if task is not None:
            names[task_id] = task.name
    return names


async def list_public_stacks(
    svc: Services, org_id: int, offset: int, limit: int
) -> tuple[Page[Stack], dict[int, str]]:
    async with svc.db.read() as tx:
        page = await tx.stacks.public_page(org_id, offset, limit)
        return page, await _task_names(tx, org_id, page.items)


async def get_public_stack(
    svc: Services, org_id: int, stack_id: int | None, name: str | None
) -> tuple[Stack, dict[int, str]]:
    """A public stack of the organization; a private one (or another organization's) is
    not found: an anonymous reader learns nothing of it."""
    async with svc.db.read() as tx:
        if stack_id is not None:
            found = await tx.stacks.get(org_id, stack_id)
        else:
            assert name is not None
            found = await tx.stacks.by_name(org_id, name)
        if found is None or not found.public:
            raise NotFound(f"no public stack {stack_id if stack_id is not None else name!r}")
        return found, await _task_names(tx, org_id, [found])
