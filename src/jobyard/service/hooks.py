"""Anonymous triggers: a task's secret URL starts a run without a credential.

The secret is shown once, when made or rotated; only its SHA-256 is stored, so it is
looked up by that hash (an index lookup whose timing says nothing about the secret) and
the stored and presented hashes are compared in constant time. Rotating replaces the hash
in one statement: the old secret stops at once. Failed attempts count against the caller's
address (429 past its budget) and, when the caller names the task, against the task (each
attempt waits longer; see ``throttle``).
A hook run accepts only the task's declared arguments.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from jobyard.domain.errors import NotFound
from jobyard.domain.records import Principal
from jobyard.domain.tasks import Task
from jobyard.service import throttle
from jobyard.service.context import Services
from jobyard.service.events import record
from jobyard.service.jobs import JobView
from jobyard.service.launches import Origin, launch
from jobyard.service.tasks import may_change, task_of
from jobyard.store import Tx

SECRET_PREFIX = "jyh_"


@dataclass(frozen=True)
class IssuedSecret:
    task: Task
    secret: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def within_budget(svc: Services, client: str, account: str | None = None) -> throttle.Attempt:
    """Let one secret-bearing attempt through: 429 when ``client`` has spent its budget,
    after ``account``'s backoff (``task:<id>``, ``stack:<id>``) when the caller names one."""
    return await throttle.attempt(svc, "hooks", client=client, account=account, what="attempts")


async def rotate_secret(svc: Services, who: Principal, task_id: int) -> IssuedSecret:
    """Give the task a new secret (its first, or instead of the old one, which stops now)."""
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    now = svc.clock.now()
    async with svc.db.begin() as tx:
        task = await task_of(tx, who, task_id, lock=True)
        may_change(who, task, "changing a task's secret")
        rotated = task.secret_prefix is not None
        updated = await tx.tasks.update(
            task.id,
            {
                "secret_hash": hash_secret(secret),
                "secret_prefix": secret[: len(SECRET_PREFIX) + 4],
                "secret_rotated_at": now,
                "updated_at": now,
            },
        )
        await record(
            svc,
            tx,
            org_id=task.org_id,
            kind="task",
            subject_id=task.id,
            type="task.secret_rotated" if rotated else "task.secret_created",
            actor=who.actor,
            now=now,
        )
        return IssuedSecret(updated, secret)


async def drop_secret(svc: Services, who: Principal, task_id: int) -> Task:
    """Remove the task's secret: its URL stops working."""
    now = svc.clock.now()
    async with svc.db.begin() as tx:
        task = await task_of(tx, who, task_id, lock=True)
        may_change(who, task, "removing a task's secret")
        updated = await tx.tasks.update(
            task.id,
            {
                "secret_hash": None,
                "secret_prefix": None,
                "secret_rotated_at": now,
                "updated_at": now,
            },
        )
        await record(
            svc,
            tx,
            org_id=task.org_id,
            kind="task",
            subject_id=task.id,
            type="task.secret_removed",
            actor=who.actor,
            now=now,
        )
        return updated


async def run_by_secret(
    svc: Services,
    secret: str,
    arguments: Any = None,
    *,
    client: str,
    org_name: str | None = None,
    task_id: int | None = None,
) -> JobView:
    """Start a run of the task whose secret this is, anonymously.

    ``org_name`` and ``task_id`` (TheEye sends both beside the secret) must match when
    given. Unknown or mismatched secrets answer 404 and count as failures of ``client``.
    """
    tried = await within_budget(svc, client, None if task_id is None else f"task:{task_id}")
    presented = hash_secret(secret or "")

    async def start(tx: Tx) -> JobView:
        task = await tx.tasks.by_secret_hash(presented) if secret else None
        stored = await tx.tasks.secret_hash_of(task.id) if task is not None else None
        org = await tx.accounts.org_by_id(task.org_id) if task is not None else None
        if (
            task is None
            or stored is None
            or org is None
            or not hmac.compare_digest(stored, presented)
            or (org_name is not None and org_name != org.name)
            or (task_id is not None and task_id != task.id)
        ):
            tried.failed()
            raise NotFound("no task has this secret (it may have been rotated)")
        tried.succeeded()
        launched = await launch(
            svc,
            tx,
            org_id=task.org_id,
            task=task,
            stack=None,
            arguments=arguments,
            origin=Origin(actor=f"hook:{task.secret_prefix}"),
        )
        assert launched.job is not None
        return JobView(launched.job, await tx.jobs.runs(launched.job.id))

    return await svc.db.write(start)
