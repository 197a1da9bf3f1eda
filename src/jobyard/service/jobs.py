"""Job use cases: create (draft or submitted), read, list, update, submit, stop, delete."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jobyard.domain.accounts import Role, require
from jobyard.domain.clusters import DEAD, WAIT_KEY, ClusterStatus, job_waits
from jobyard.domain.errors import Conflict, Forbidden, Invalid, NotFound
from jobyard.domain.jobs import JobStatus
from jobyard.domain.jobspec import FROZEN_AFTER_SUBMIT, JobSpec
from jobyard.domain.nodes import Availability
from jobyard.domain.quorum import Quorum
from jobyard.domain.records import Cluster, Event, Job, NodeRun, Page, Principal
from jobyard.domain.rounds import first_round
from jobyard.domain.targets import NodeInfo, Target, select_nodes
from jobyard.service.context import Services
from jobyard.service.events import record_job_event
from jobyard.service.rounds import commits_of, send_all
from jobyard.service.secrets import with_sealed_env
from jobyard.service.sharing import readable_job
from jobyard.service.transitions import admit, admit_voting, move_job
from jobyard.store import Tx, reads
from jobyard.store.jobs import JobFilter

ACTIVE = (JobStatus.ONHOLD, JobStatus.NEW, JobStatus.VOTING, JobStatus.RUNNING)


@dataclass(frozen=True)
class JobView:
    """A job with its node runs, as the API and dialects render it."""

    job: Job
    runs: list[NodeRun]

    @property
    def node_names(self) -> list[str]:
        return [r.node_name for r in self.runs]


def spec_of(job: Job) -> JobSpec:
    """Rebuild the spec a stored job was made from."""
    return JobSpec(
        target=Target.from_json(job.target),
        command="" if job.argv is not None else job.command,
        argv=tuple(job.argv) if job.argv is not None else None,
        name=job.name,
        description=job.description,
        quorum=Quorum.parse(job.quorum),
        run_timeout=job.run_timeout,
        env=dict(job.env),
        dir=job.dir,
        capture_output=job.capture_output,
        meta=dict(job.meta),
    )


async def _resolve_nodes(tx: Tx, org_id: int, target: Target) -> list[str]:
    if target.nodes:
        return list(target.nodes)
    known = await tx.nodes.all(org_id)
    infos = [
        NodeInfo(n.name, n.online, n.busy, frozenset(n.tags), n.cluster, n.connected) for n in known
    ]
    chosen = select_nodes(target, infos)
    if not chosen:
        what = f"cluster {target.cluster!r}" if target.cluster else f"tags {list(target.tags)}"
        raise Invalid(f"no node matches {what}: start an agent that matches first", "target")
    return chosen


async def placement(tx: Tx, org_id: int, target: Target) -> tuple[list[str], dict[str, Any]]:
    """Where a job with this target runs: its node names, and the job columns that say so."""
    values: dict[str, Any] = {}
    if target.cluster:
        cluster = await tx.clusters.by_name(org_id, target.cluster)
        if cluster is None or cluster.status in ("pending_terminate", "terminating", "terminated"):
            raise Invalid(f"no live cluster named {target.cluster!r}", "cluster")
        values["cluster_id"] = cluster.id
    return await _resolve_nodes(tx, org_id, target), values


async def _cluster_not_ready(tx: Tx, org_id: int, target: Target) -> Cluster | None:
    """The cluster a job with this target must wait for, or None when it may run now."""
    if not target.cluster:
        return None
    cluster = await tx.clusters.by_name(org_id, target.cluster)
    if cluster is None:
        return None
    members = await tx.nodes.all(org_id, cluster=cluster.name)
    infos = [NodeInfo(n.name, n.online, n.busy, frozenset(n.tags), n.cluster) for n in members]
    if not job_waits(ClusterStatus(cluster.status), len(select_nodes(target, infos))):
        return None
    return cluster


async def _cluster_hold(svc: Services, tx: Tx, job: Job, actor: str) -> Job | None:
    """Hold a job whose cluster is not ready for it yet: ``onhold`` until the cluster is
    available (``release_waiting``), failing if it is not within ``cluster_wait``."""
    if job.status is not JobStatus.DRAFT:
        return None
    cluster = await _cluster_not_ready(tx, job.org_id, Target.from_json(job.target))
    if cluster is None:
        return None
    until = svc.clock.now() + dt.timedelta(seconds=svc.settings.cluster_wait)
    wait = {"cluster": cluster.name, "until": until.isoformat()}
    held = await move_job(
        svc,
        tx,
        job,
        JobStatus.ONHOLD,
        actor=actor,
        reason=f"waiting for cluster {cluster.name} to be available",
        values={"meta": {**job.meta, WAIT_KEY: wait}, "cluster_id": cluster.id},
    )
    if held is None:
        raise Conflict("the job changed while it was being submitted; try again")
    return held


async def _enter_new(svc: Services, tx: Tx, job: Job, actor: str) -> Job:
    """Resolve the target, create the node runs and move the job to ``new`` (or hold it
    until its cluster is available)."""
    held = await _cluster_hold(svc, tx, job, actor)
    if held is not None:
        return held
    names, values = await placement(tx, job.org_id, Target.from_json(job.target))
    if WAIT_KEY in job.meta:
        values["meta"] = {k: v for k, v in job.meta.items() if k != WAIT_KEY}
    moved = await move_job(
        svc, tx, job, JobStatus.NEW, actor=actor, reason="submitted", values=values
    )
    if moved is None:
        raise Conflict("the job changed while it was being submitted; try again")
    await tx.jobs.insert_runs(moved, names, svc.clock.now())
    tx.after_commit(lambda: svc.hub.publish("dispatch", moved.id))
    return moved


async def add_job(svc: Services, tx: Tx, values: dict[str, Any], **how: Any) -> Job:
    """``add_job_with_runs`` (the same keywords), for callers that need only the job."""
    job, _ = await add_job_with_runs(svc, tx, values, **how)
    return job


async def add_job_with_runs(
    svc: Services,
    tx: Tx,
    values: dict[str, Any],
    *,
    org_id: int,
    created_by: int | None,
    actor: str,
    then: JobStatus | None = JobStatus.NEW,
    reason: str | None = None,
    known: Mapping[str, Availability] | None = None,
) -> tuple[Job, list[NodeRun] | None]:
    """Write a job (``values``: its spec columns, kind, task_id ...) in this transaction and
    move it on: submitted (``voting``, or ``new`` for the dispatcher to start), to
    ``onhold`` (waiting; ``reason`` says for what), or nowhere (``then=None``: a draft).
    Returns the job, and its node runs when they were written here (``known``: the
    target's nodes, read already with a shared lock)."""
    target = Target.from_json(values["target"]) if then is JobStatus.NEW else None
    if target is not None and await _cluster_not_ready(tx, org_id, target) is None:
        # Submitted at once: written directly in ``voting`` (or ``new``) with its node runs.
        names, place = await placement(tx, org_id, target)
        row = {**values, **place, "org_id": org_id, "created_by": created_by}
        if svc.runtime.dispatching:
            born = await _born_voting(svc, tx, row, names, actor, known)
            if born is not None:
                return born
        (job,) = await admit(svc, tx, [(row, actor)], reason="submitted")
        await tx.jobs.insert_runs(job, names, job.created_at)
        tx.after_commit(lambda: svc.hub.publish("dispatch", job.id))
        return job, None
    now = svc.clock.now()
    job = await tx.jobs.insert(
        {
            **values,
            "org_id": org_id,
            "status": JobStatus.DRAFT.value,
            "attempt": 0,
            "created_by": created_by,
            "created_at": now,
            "updated_at": now,
        }
    )
    await record_job_event(
        svc,
        tx,
        job,
        "job.created",
        actor=actor,
        to_status=JobStatus.DRAFT.value,
        reason=reason if then is None else None,
        now=now,
    )
    if then is JobStatus.NEW:  # its cluster is not ready: held until it is
        return await _enter_new(svc, tx, job, actor), None
    if then is JobStatus.ONHOLD:
        held = await move_job(svc, tx, job, JobStatus.ONHOLD, actor=actor, reason=reason)
        assert held is not None  # nobody else knows the job yet
        return held, None
    return job, None


async def _born_voting(
    svc: Services,
    tx: Tx,
    row: dict[str, Any],
    names: list[str],
    actor: str,
    known: Mapping[str, Availability] | None,
) -> tuple[Job, list[NodeRun]] | None:
    """In a server that dispatches, a submitted job opens voting in the transaction that
    writes it: its nodes are read with a shared lock (a hello committing meanwhile is
    seen, or sees the job voting) and asked for their vote after commit. None when the
    first round goes further than voting (every node unavailable): the dispatcher's
    starter takes such a job from ``new``."""
    if known is None:
        known = await tx.nodes.availability_of(row["org_id"], names, for_share=True)
    required = Quorum.parse(row["quorum"]).required(len(names))
    rnd, ask = first_round(names, required, svc.clock.now(), known)
    if rnd.status is not JobStatus.VOTING:
        return None
    job, runs = await admit_voting(svc, tx, row, actor, rnd)
    commit = commits_of(svc, job)
    send_all(svc, tx, job.org_id, [(node, commit(node)) for node in ask])
    return job, runs


async def release_job(svc: Services, tx: Tx, job: Job, actor: str) -> Job:
    """Submit a draft or ``onhold`` job: resolve its target, create its node runs, ``new``."""
    return await _enter_new(svc, tx, job, actor)


# How many known node names an "unknown node" error lists.
KNOWN_SHOWN = 20


async def refuse_unknown_nodes(
    tx: Tx, org_id: int, names: Sequence[str]
) -> dict[str, Availability]:
    """Refuse node names that no agent of the organization has ever registered: a typo
    would otherwise wait for a node that never comes and end ``quorum_failed``. Returns
    the nodes' availability, read with a shared lock (PostgreSQL) as the submit's voting
    needs it."""
    if not names:
        return {}
    found = await tx.nodes.availability_of(org_id, list(names), for_share=True)
    unknown = [n for n in names if n not in found]
    if not unknown:
        return found
    every = sorted(n.name for n in await tx.nodes.all(org_id))
    shown = ", ".join(every[:KNOWN_SHOWN]) + (" ..." if len(every) > KNOWN_SHOWN else "")
    listed = f"known nodes: {shown}" if every else "no agent has registered yet"
    words = ", ".join(repr(n) for n in unknown)
    raise Invalid(
        f"no agent has ever registered as {words} ({listed}); start `jobyard agent --name "
        f"{unknown[0]}` on that machine, or pass allow_unknown_nodes "
        "(jobyard run --allow-unknown-nodes) to pre-declare it",
        "nodes",
    )


async def release_waiting(svc: Services, tx: Tx) -> int:
    """Jobs waiting for their cluster: run those whose cluster is available with a node,
    fail those whose cluster failed or ended, or whose wait is over. Returns jobs moved."""
    now = svc.clock.now()
    moved = 0
    for candidate in await tx.jobs.active([JobStatus.ONHOLD]):
        wait = candidate.meta.get(WAIT_KEY)
        if not isinstance(wait, dict):
            continue
        job = await tx.jobs.get_any(candidate.id, for_update=True)
        if job is None or job.status is not JobStatus.ONHOLD:
            continue
        name = str(wait.get("cluster"))
        cluster = await tx.clusters.by_name(job.org_id, name)
        status = ClusterStatus(cluster.status) if cluster else ClusterStatus.TERMINATED
        reason = None
        if status in DEAD:
            reason = f"cluster {name} is {status.value} before it was available"
        else:
            try:
                await _enter_new(svc, tx, job, "cluster")
                moved += 1
                continue
            except Invalid:
                pass  # available, but none of its nodes is online: keep waiting
        until = dt.datetime.fromisoformat(str(wait.get("until")))
        if reason is None and now >= until:
            reason = f"cluster {name} was not available within {svc.settings.cluster_wait:g} s"
        if reason is not None:
            left = {k: v for k, v in job.meta.items() if k != WAIT_KEY}
            await move_job(
                svc,
                tx,
                job,
                JobStatus.TIMED_OUT,
                actor="cluster",
                reason=reason,
                values={"meta": left},
            )
            moved += 1
    return moved


async def create_job(
    svc: Services,
    who: Principal,
    spec: JobSpec,
    *,
    draft: bool = False,
    known_nodes_only: bool = False,
) -> JobView:
    """Save a job; unless it is a draft, submit it in the same transaction. With
    ``known_nodes_only``, node names no agent ever registered are refused."""
    require(who.role, Role.USER, "creating a job")

    async def create(tx: Tx) -> JobView:
        known = None
        if known_nodes_only and spec.target.nodes:
            known = await refuse_unknown_nodes(tx, who.org_id, spec.target.nodes)
        job, runs = await add_job_with_runs(
            svc,
            tx,
            spec.row(),
            org_id=who.org_id,
            created_by=who.user_id,
            actor=who.actor,
            then=None if draft else JobStatus.NEW,
            reason="saved as a draft" if draft else None,
            known=known,
        )
        if runs is None:
            runs = await tx.jobs.runs(job.id)
        return JobView(job, runs)

    # Concurrent submits share a transaction (group commit: store/writer.py).
    return await svc.db.write(create)


async def _visible_job(
    tx: Tx, who: Principal, job_id: int, *, lock: bool = False, shared: bool = False
) -> Job:
    """A job of the caller's organization; with ``shared``, also one shared with the caller."""
    job = await tx.jobs.get(who.org_id, job_id, for_update=lock)
    if job is None and shared:
        job = await readable_job(tx, who, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job


def _may_change(who: Principal, job: Job, action: str) -> None:
    require(who.role, Role.USER, action)
    if job.created_by != who.user_id and who.role is not Role.ADMIN:
        raise NotFound(f"no job {job.id} of yours; only its creator or an admin may do that")


async def get_job(svc: Services, who: Principal, job_id: int) -> JobView:
    """A job of the caller's organization, or one shared with the caller; else NotFound.

    One statement outside a transaction (the job joined to its runs, store/reads.py,
    ``Database.quick``); a job only shared with the caller takes the longer way."""
    require(who.role, Role.VIEWER, "reading a job")
    async with svc.db.quick() as rows:
        found = await reads.job_with_runs(rows, who.org_id, job_id)
    if found is not None:
        return JobView(*found)
    async with svc.db.read() as tx:
        job = await _visible_job(tx, who, job_id, shared=True)
        return JobView(job, await tx.jobs.runs(job.id))


async def get_job_by_name(svc: Services, who: Principal, name: str) -> JobView:
    require(who.role, Role.VIEWER, "reading a job")
    async with svc.db.read() as tx:
        job = await tx.jobs.by_name(who.org_id, name)
        if job is None:
            raise NotFound(f"no job named {name!r}")
        return JobView(job, await tx.jobs.runs(job.id))


async def list_jobs(
    svc: Services,
    who: Principal,
    flt: JobFilter,
    *,
    sort: str = "created_at",
    descending: bool = True,
    offset: int = 0,
    limit: int = 20,
) -> Page[JobView]:
    """A page of the jobs the caller may see (its organization's, and those shared with it):
    one statement with its total and runs after the check whether anything is shared with
    the caller at all (store/reads.py)."""
    require(who.role, Role.VIEWER, "listing jobs")
    if limit > svc.settings.max_page_size or limit < 1:
        raise Invalid(f"page size must be 1 to {svc.settings.max_page_size}", "page_size")
    async with svc.db.quick() as rows:
        if flt.shared_with is None and await reads.has_shares(rows, who.user_id):
            flt = dataclasses.replace(flt, shared_with=who.user_id)
        page = await reads.page_with_runs(
            rows, who.org_id, flt, sort=sort, descending=descending, offset=offset, limit=limit
        )
    return Page([JobView(job, runs) for job, runs in page.items], page.total)


async def update_job(
    svc: Services, who: Principal, job_id: int, changes: dict[str, Any]
) -> JobView:
    """Change a job. Before submit anything may change; after, only name and description."""

    async def update(tx: Tx) -> JobView:
        job = await _visible_job(tx, who, job_id, lock=True)
        _may_change(who, job, "updating a job")
        current = spec_of(job)
        fields = dict(changes)  # sealed here: run again after a deadlock, it starts afresh
        with_sealed_env(svc.secrets, current.env, fields)
        try:
            new_spec = dataclasses.replace(current, **fields)
        except TypeError as exc:
            raise Invalid(f"unknown field in update: {exc}") from None
        if job.status is not JobStatus.DRAFT:
            frozen = [f for f in FROZEN_AFTER_SUBMIT if getattr(new_spec, f) != getattr(current, f)]
            if frozen:
                raise Conflict(
                    f"{', '.join(frozen)} cannot change once the job is submitted "
                    f"(status {job.status}); only name and description can"
                )
        now = svc.clock.now()
        updated = await tx.jobs.update(job.id, {**new_spec.row(), "updated_at": now})
        await record_job_event(
            svc, tx, job, "job.updated", actor=who.actor, data={"fields": sorted(fields)}, now=now
        )
        return JobView(updated, await tx.jobs.runs(job.id))

    return await svc.db.write(update)


async def submit_job(svc: Services, who: Principal, job_id: int) -> JobView:
    async def submit(tx: Tx) -> JobView:
        job = await _visible_job(tx, who, job_id, lock=True)
        _may_change(who, job, "submitting a job")
        if job.status is not JobStatus.DRAFT:
            raise Conflict(f"job {job.id} was submitted already (status {job.status})")
        job = await _enter_new(svc, tx, job, who.actor)
        return JobView(job, await tx.jobs.runs(job.id))

    return await svc.db.write(submit)


async def abort_job(
    svc: Services, tx: Tx, job: Job, *, actor: str | None, reason: str
) -> Job | None:
    """Abort a job and every unfinished node run; agents are told to kill after commit."""
    from jobyard.service.rounds import load_round, persist_round

    rnd = await load_round(tx, job, svc.clock.now())
    rnd.abort(reason)
    return await persist_round(svc, tx, job, rnd, actor=actor)


async def stop_job(
    svc: Services,
    who: Principal,
    job_id: int,
    reason: str | None = None,
    *,
    record_stopper: bool = False,
) -> JobView:
    """Abort an active job. ``record_stopper``: keep who stopped it as the job's result
    (``{"stopped_by": {...}}``), written with the abort (TheEye's cancel shows it)."""

    async def stop(tx: Tx) -> JobView:
        job = await _visible_job(tx, who, job_id, lock=True)
        _may_change(who, job, "stopping a job")
        if job.task_id is not None and who.role is not Role.ADMIN:
            task = await tx.tasks.get(job.org_id, job.task_id)
            if task is not None and not task.spec.cancellable:
                raise Forbidden("Job is not cancellable")
        if job.status.terminal:
            raise Conflict(f"job {job.id} has finished already (status {job.status})")
        if job.status is JobStatus.DRAFT:
            raise Conflict(f"job {job.id} is a draft: delete it instead")
        moved = await abort_job(
            svc, tx, job, actor=who.actor, reason=reason or f"stopped by {who.actor}"
        )
        if moved is None:
            raise Conflict("the job changed while it was being stopped; try again")
        if record_stopper:
            stopper = {"user_id": who.user_id, "email": who.email, "name": who.display_name}
            moved = await tx.jobs.update(job.id, {"result": {"stopped_by": stopper}})
        return JobView(moved, await tx.jobs.runs(job.id))

    return await svc.db.write(stop)


async def delete_job(svc: Services, who: Principal, job_id: int) -> None:
    """Delete a draft or a finished job with its history; an active job answers 409."""

    async def delete(tx: Tx) -> None:
        job = await _visible_job(tx, who, job_id, lock=True)
        _may_change(who, job, "deleting a job")
        if job.status.active:
            raise Conflict(
                f"job {job.id} is {job.status}: stop it first (POST /api/v1/jobs/{job.id}/stop)"
            )
        keys = await tx.files.delete_of_job(job.id)
        await tx.events.delete_of_job(job.id)
        await tx.jobs.delete(job.id)

        def remove_files() -> None:
            for key in keys:
                svc.files.delete(key)

        tx.after_commit(remove_files)

    await svc.db.write(delete)


async def job_history(
    svc: Services,
    who: Principal,
    job_id: int,
    *,
    offset: int = 0,
    limit: int = 50,
    newest_first: bool = False,
) -> Page[Event]:
    """The job's status transitions, with time, actor and reason."""
    require(who.role, Role.VIEWER, "reading a job's history")
    async with svc.db.read() as tx:
        await _visible_job(tx, who, job_id, shared=True)
        return await tx.events.of_subject(
            "job",
            job_id,
            types=("job.status", "job.created"),
            offset=offset,
            limit=limit,
            newest_first=newest_first,
        )


async def job_events(svc: Services, who: Principal, job_id: int, after_id: int = 0) -> list[Event]:
    """Every event of the job and its node runs, after an event id (stream replay)."""
    require(who.role, Role.VIEWER, "reading a job's events")
    async with svc.db.read() as tx:
        await _visible_job(tx, who, job_id, shared=True)
        return await tx.events.of_job(job_id, after_id)
