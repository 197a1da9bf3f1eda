"""A stack's webhook: a URL that runs the stack when called (Kragle's webhooks).

``webhook`` says who may call it: ``public`` (anyone with the URL), ``token`` (whoever
presents the stack's webhook token) or ``user`` (its owner, signed in); None: no webhook.
``webhook_method`` is GET or POST; the other verb is refused. The token is shown once, when
made or refreshed; only its SHA-256 is stored, compared in constant time. Failed calls
(wrong token, wrong owner, no such hook) count against the caller's address in the same
budget as task secrets, and past it every call answers 429 until the window passes.

The call's query, form, JSON body and headers reach the run's jobs as the environment
variable ``JOBYARD_HOOK_INPUT`` (Kragle's ``{GET, POST, JSON, HEADERS}`` input).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from jobyard.domain.accounts import Role, require
from jobyard.domain.chains import StackRunStatus, named_outputs, step_succeeded
from jobyard.domain.errors import Conflict, Invalid, JobyardError, NotFound
from jobyard.domain.records import Job, Principal
from jobyard.domain.triggers import Stack
from jobyard.service import hooks
from jobyard.service.chains import start_chain, stdout_of
from jobyard.service.context import Services
from jobyard.service.launches import Origin, launch
from jobyard.service.schedules import event, may_change
from jobyard.store import Tx

WEBHOOK_MODES = ("public", "token", "user")
WEBHOOK_METHODS = ("GET", "POST")
TOKEN_PREFIX = "jyw_"
HOOK_INPUT = "JOBYARD_HOOK_INPUT"
MAX_HOOK_INPUT = 65536


def check_webhook(mode: Any, method: Any) -> tuple[str | None, str | None]:
    if mode is not None and mode not in WEBHOOK_MODES:
        raise Invalid("webhook is null, public, token or user", "webhook")
    if method is not None and method not in WEBHOOK_METHODS:
        raise Invalid("webhook_method is GET or POST", "webhook_method")
    if mode is None:
        return None, None
    return mode, method or "POST"


def _new_token() -> tuple[str, dict[str, Any]]:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, {
        "webhook_hash": hooks.hash_secret(token),
        "webhook_prefix": token[: len(TOKEN_PREFIX) + 4],
    }


def webhook_values(
    mode: str | None, method: str | None, had_token: bool
) -> tuple[str | None, dict[str, Any]]:
    """Columns for a webhook setting, and the new token when one is made."""
    values: dict[str, Any] = {"webhook": mode, "webhook_method": method}
    if mode == "token" and not had_token:
        token, columns = _new_token()
        return token, {**values, **columns}
    if mode != "token":
        values.update(webhook_hash=None, webhook_prefix=None)
    return None, values


@dataclass(frozen=True)
class Webhook:
    stack: Stack
    token: str | None  # shown once: when made or refreshed


async def set_webhook(
    svc: Services, who: Principal, stack_id: int, mode: Any, method: Any
) -> Webhook:
    """Make, change or remove (mode None) a stack's webhook."""
    mode, method = check_webhook(mode, method)
    async with svc.db.begin() as tx:
        stack = await tx.stacks.get(who.org_id, stack_id)
        if stack is None:
            raise NotFound(f"no stack {stack_id}")
        may_change(who, stack.created_by, f"stack {stack_id}", "changing a stack's webhook")
        token, values = webhook_values(mode, method, stack.webhook_hash is not None)
        updated = await tx.stacks.update(stack.id, {**values, "updated_at": svc.clock.now()})
        await event(
            svc, tx, who, "stack", stack.id, "stack.webhook_set", webhook=mode, method=method
        )
        return Webhook(updated, token)


async def refresh_token(svc: Services, who: Principal, stack_id: int) -> Webhook:
    """A new webhook token; the old one stops at once."""
    async with svc.db.begin() as tx:
        stack = await tx.stacks.get(who.org_id, stack_id)
        if stack is None:
            raise NotFound(f"no stack {stack_id}")
        may_change(who, stack.created_by, f"stack {stack_id}", "refreshing a webhook token")
        if stack.webhook != "token":
            raise Invalid("this stack's webhook takes no token (set webhook to token first)")
        token, columns = _new_token()
        updated = await tx.stacks.update(stack.id, {**columns, "updated_at": svc.clock.now()})
        await event(svc, tx, who, "stack", stack.id, "stack.webhook_token_refreshed")
        return Webhook(updated, token)


@dataclass(frozen=True)
class Started:
    """What a call started: a stack run (a chain) or one job."""

    org_id: int
    run_id: int | None
    job_id: int


class NotStarted(Exception):
    """The stack could not start (no node matches, a policy refused...): Kragle answers this
    in the body of a 200, as an error of the stack's run, not of the request."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


async def start_stack(
    svc: Services, tx: Tx, stack: Stack, origin: Origin, env: dict[str, str] | None = None
) -> Started:
    """Run a stack (a chain, or its one task or command) with extra environment; NotStarted
    (and nothing written: the caller's transaction rolls back) when it cannot start."""
    try:
        return await _start_stack(svc, tx, stack, origin, env)
    except (Invalid, Conflict) as exc:
        raise NotStarted(exc.detail) from None


async def _start_stack(
    svc: Services, tx: Tx, stack: Stack, origin: Origin, env: dict[str, str] | None
) -> Started:
    if env:
        stack = dataclasses.replace(stack, env={**stack.env, **env})
    if stack.chained:
        run, job = await start_chain(svc, tx, stack, None, origin)
        return Started(stack.org_id, run.id, job.id)
    task = await tx.tasks.get(stack.org_id, stack.task_id) if stack.task_id else None
    launched = await launch(
        svc, tx, org_id=stack.org_id, task=task, stack=stack, arguments=None, origin=origin
    )
    assert launched.job is not None
    return Started(stack.org_id, None, launched.job.id)


async def run_stack(svc: Services, who: Principal, stack_id: int) -> Started:
    """Run one of the caller's organization's stacks now (Kragle's exec)."""
    require(who.role, Role.USER, "running a stack")

    async def start(tx: Tx) -> Started:
        stack = await tx.stacks.get(who.org_id, stack_id)
        if stack is None:
            raise NotFound(f"no stack {stack_id}")
        return await start_stack(svc, tx, stack, Origin(actor=who.actor, created_by=who.user_id))

    return await svc.db.write(start)


async def run_by_webhook(
    svc: Services,
    stack_id: int,
    method: str,
    *,
    token: str | None,
    who: Principal | None,
    client: str,
    hook_input: dict[str, Any],
) -> Started:
    """Run the stack whose webhook this is, if the caller may call it."""
    tried = await hooks.within_budget(svc, client, f"stack:{stack_id}")

    async def start(tx: Tx) -> Started:
        stack = await tx.stacks.get_any(stack_id)
        allowed = stack is not None and stack.webhook is not None
        if allowed and stack is not None and stack.webhook == "token":
            presented = hooks.hash_secret(token or "")
            allowed = stack.webhook_hash is not None and hmac.compare_digest(
                stack.webhook_hash, presented
            )
        if allowed and stack is not None and stack.webhook == "user":
            allowed = (
                who is not None and who.org_id == stack.org_id and (who.user_id == stack.created_by)
            )
        if not allowed or stack is None:
            tried.failed()
            raise NotFound(f"no webhook for stack {stack_id} that this call may use")
        tried.succeeded()
        if method != stack.webhook_method:
            raise Invalid(
                f"this webhook answers {stack.webhook_method} only", "method", kragle_code=1
            )
        text = json.dumps(hook_input)
        if len(text) > MAX_HOOK_INPUT:
            raise Invalid(f"the webhook's input exceeds {MAX_HOOK_INPUT} characters", "body")
        actor = f"webhook:{stack.name}" if who is None else who.actor
        origin = Origin(actor=actor, created_by=who.user_id if who else stack.created_by)
        return await start_stack(svc, tx, stack, origin, {HOOK_INPUT: text})

    return await svc.db.write(start)


@dataclass(frozen=True)
class Outcome:
    """Where a started run is after waiting: ended or not, how, and what it printed."""

    ended: bool
    ok: bool
    reason: str | None
    executed: list[int]  # positions (from 1) of the steps that ran
    output: Any  # the last step's named values, else its stdout


async def _outcome(tx: Tx, started: Started) -> Outcome:
    if started.run_id is None:
        job = await tx.jobs.get_any(started.job_id)
        assert job is not None
        return await _job_outcome(tx, job, [1])
    run = await tx.stack_runs.get(started.org_id, started.run_id)
    assert run is not None
    steps = await tx.stack_runs.steps(run.id)
    executed = [s.idx + 1 for s in steps]
    if run.status is StackRunStatus.RUNNING:
        return Outcome(False, False, None, executed, None)
    last = await tx.jobs.get_any(steps[-1].job_id) if steps else None
    output = None
    if last is not None:
        output = (await _job_outcome(tx, last, executed)).output
    ok = run.status is StackRunStatus.SUCCEEDED
    return Outcome(True, ok, run.reason, executed, output)


async def _job_outcome(tx: Tx, job: Job, executed: list[int]) -> Outcome:
    runs = await tx.jobs.runs(job.id)
    stdout = await stdout_of(tx, runs)
    output: Any = named_outputs(stdout) or stdout
    if not job.status.terminal:
        return Outcome(False, False, None, executed, None)
    ok = step_succeeded(job.status.value, job.state, [r.status.value for r in runs])
    reason = None if ok else f"job {job.id} ended {job.status.value}"
    return Outcome(True, ok, reason, executed, output)


async def wait_for(svc: Services, started: Started, timeout: float) -> Outcome:
    """Poll until the run (or job) ends, at most ``timeout`` seconds."""
    deadline = time.monotonic() + max(0.0, timeout)
    while True:
        try:
            async with svc.db.read() as tx:
                found = await _outcome(tx, started)
        except JobyardError:
            raise
        if found.ended or time.monotonic() >= deadline:
            return found
        await asyncio.sleep(0.2)
