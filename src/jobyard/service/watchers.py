"""Watching jobs and clusters (Xplenty): who is told when they finish or change.

Anyone who can read a job or cluster may watch it, stop watching and list its
watchers; the creator watches from the start (``service/outbox.py`` adds them when
the creation event is recorded); admins may add or remove other members.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from jobyard.domain.accounts import Role, require
from jobyard.domain.errors import Invalid, NotFound
from jobyard.domain.notifications import Watcher
from jobyard.domain.records import Principal
from jobyard.service.context import Services
from jobyard.service.sharing import readable_job
from jobyard.store import Tx

WATCHABLE = ("job", "cluster", "stack_run")


@dataclass(frozen=True)
class Watch:
    """One user watching one job or cluster; ``created`` is False when they were already."""

    kind: str
    subject_id: int
    user_id: int
    created_at: dt.datetime
    created: bool


async def _subject_org(tx: Tx, who: Principal, kind: str, subject_id: int) -> int:
    """The organization of a job or cluster the caller can read; 404 otherwise."""
    if kind == "job":
        job = await readable_job(tx, who, subject_id)
        if job is None:
            raise NotFound(f"no job {subject_id}")
        return job.org_id
    if kind == "cluster":
        cluster = await tx.clusters.get(who.org_id, subject_id)
        if cluster is None:
            raise NotFound(f"no cluster {subject_id}")
        return cluster.org_id
    if kind == "stack_run":
        run = await tx.stack_runs.get(who.org_id, subject_id)
        if run is None:
            raise NotFound(f"no stack run {subject_id}")
        return run.org_id
    raise Invalid(f"only {', '.join(WATCHABLE)}s can be watched, not {kind!r}", "kind")


async def _whom(tx: Tx, who: Principal, user_id: int | None, action: str) -> int:
    if user_id is None or user_id == who.user_id:
        return who.user_id
    require(who.role, Role.ADMIN, action)
    if await tx.accounts.role_of(who.org_id, user_id) is None:
        raise NotFound(f"no member {user_id} in this organization")
    return user_id


async def watch(
    svc: Services, who: Principal, kind: str, subject_id: int, user_id: int | None = None
) -> Watch:
    """Watch a job or cluster (idempotent); an admin may name another member."""
    require(who.role, Role.VIEWER, "watching")
    async with svc.db.begin() as tx:
        org_id = await _subject_org(tx, who, kind, subject_id)
        uid = await _whom(tx, who, user_id, "adding another member as a watcher")
        since, created = await tx.notify.watchers.add(
            org_id, kind, subject_id, uid, svc.clock.now()
        )
    return Watch(kind, subject_id, uid, since, created)


async def unwatch(
    svc: Services, who: Principal, kind: str, subject_id: int, user_id: int | None = None
) -> bool:
    """Stop watching (idempotent); returns whether there was a watch to remove."""
    require(who.role, Role.VIEWER, "watching")
    async with svc.db.begin() as tx:
        await _subject_org(tx, who, kind, subject_id)
        uid = await _whom(tx, who, user_id, "removing another member from the watchers")
        return await tx.notify.watchers.remove(kind, subject_id, uid)


async def list_watchers(svc: Services, who: Principal, kind: str, subject_id: int) -> list[Watcher]:
    """Who watches a job or cluster: id, email, display name, since when."""
    require(who.role, Role.VIEWER, "listing watchers")
    async with svc.db.read() as tx:
        await _subject_org(tx, who, kind, subject_id)
        return await tx.notify.watchers.of(kind, subject_id)


async def is_watching(svc: Services, who: Principal, kind: str, subject_id: int) -> bool:
    """Whether the caller watches a job or cluster (the dashboard's toggle)."""
    return any(w.user_id == who.user_id for w in await list_watchers(svc, who, kind, subject_id))
