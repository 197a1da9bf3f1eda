"""Loading a job's round, applying agent reports and timeouts, and persisting the result.

This is the write path of the hot loop: many reports (votes, run acks, results,
output) are applied in one transaction, grouped by job, with each job's row locked
(PostgreSQL) or the single writer held (SQLite). Run changes are written in bulk, each
with its event; the commands for agents are published after commit.

The engine's report batcher keeps the rounds of active jobs in memory (``Rounds``): a
job's runs are loaded once, then each batch checks them against the database's census
of the job's runs (one aggregate query under the job's lock) and reuses them when no
other writer (a cancel, a timeout, a lost node, another replica) moved a run since;
else the round is loaded again. After a restart or a hand-over it is simply loaded.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from jobyard.domain.jobs import JobStatus, NodeRunStatus
from jobyard.domain.quorum import Quorum
from jobyard.domain.records import Job
from jobyard.domain.rounds import JobRound, RunCopy
from jobyard.domain.secrets import secret_names
from jobyard.service.context import Services
from jobyard.service.outputs import append_output
from jobyard.service.secrets import mask_output
from jobyard.service.transitions import JobMove, RunMove, apply
from jobyard.store import Tx
from jobyard.wire import agent as wire


class Report(NamedTuple):
    """One thing an agent told us (or the dispatcher decided) about one node's run (a
    tuple: thousands are made per second, each used once)."""

    kind: str  # ack_commit | nack_commit | ack_run | result | output | lost
    org_id: int
    node: str
    job_id: int
    attempt: int
    status: str | None = None
    exit_code: int | None = None
    reason: str | None = None
    stream: str | None = None
    data: str | None = None


def node_topic(org_id: int, node: str) -> str:
    return f"node:{org_id}:{node}"


def send(svc: Services, tx: Tx, org_id: int, node: str, message: str) -> None:
    """Queue a message to a node's connection, delivered once the transaction commits."""
    send_all(svc, tx, org_id, [(node, message)])


def send_all(svc: Services, tx: Tx, org_id: int, messages: Iterable[tuple[str, str]]) -> None:
    """``send`` for many (node, message) pairs, in order: one callback for all of them."""
    pending = list(messages)
    if not pending:
        return

    def publish() -> None:
        hub = svc.hub
        for node, message in pending:
            hub.publish(node_topic(org_id, node), message)

    tx.after_commit(publish)


async def load_round(tx: Tx, job: Job, now: dt.datetime) -> JobRound:
    runs = await tx.jobs.run_states(job.id)
    required = Quorum.parse(job.quorum).required(len(runs))
    return JobRound(
        job_id=job.id,
        status=job.status,
        attempt=job.attempt,
        quorum_required=required,
        runs={r[1]: RunCopy(*r) for r in runs},
        now=now,
    )


Census = dict[tuple[str, int], int]


@dataclass
class _Kept:
    attempt: int
    quorum_required: int
    runs: dict[str, RunCopy]
    census: Census
    counts: Counter[NodeRunStatus]  # the runs by status (kept current by the rounds)


class Rounds:
    """The rounds of active jobs, kept by their one writer (the engine's report batcher).

    ``round_of`` is called with the job's row locked; ``wrote`` once the round's changes
    are written (in the same transaction); ``forget`` when that transaction failed.
    Terminal jobs are dropped, and at most ``limit`` rounds are kept (least recently used
    first out).
    """

    def __init__(self, limit: int = 256) -> None:
        self.limit = limit
        self._kept: OrderedDict[int, _Kept] = OrderedDict()
        self.loads = 0  # rounds read from the database (for tests and benchmarks)

    def __contains__(self, job_id: int) -> bool:
        return job_id in self._kept

    async def round_of(self, tx: Tx, job: Job, now: dt.datetime) -> JobRound:
        kept = self._kept.get(job.id)
        if (
            kept is not None
            and kept.attempt == job.attempt
            and await tx.jobs.run_census(job.id) == kept.census
        ):
            self._kept.move_to_end(job.id)
            return JobRound(
                job_id=job.id,
                status=job.status,
                attempt=job.attempt,
                quorum_required=kept.quorum_required,
                runs=kept.runs,
                now=now,
                counts=kept.counts,
            )
        self.loads += 1
        rnd = await load_round(tx, job, now)
        self._hold(job, rnd)
        return rnd

    def _hold(self, job: Job, rnd: JobRound) -> None:
        census = Counter((r.status.value, r.attempt) for r in rnd.runs.values())
        assert rnd.counts is not None
        self._kept[job.id] = _Kept(
            job.attempt, rnd.quorum_required, rnd.runs, dict(census), rnd.counts
        )
        self._kept.move_to_end(job.id)
        while len(self._kept) > self.limit:
            self._kept.popitem(last=False)

    def keep(self, job: Job, rnd: JobRound) -> None:
        """Keep a round another writer of this process just committed (the starter opening
        voting), as it is now: the batcher's first reports for the job need not read it."""
        if job.status.terminal or rnd.status.terminal:
            return
        self._hold(job, rnd)

    def wrote(self, job: Job, rnd: JobRound) -> None:
        """The round's changes are written: count them in its census (the runs themselves
        were moved in place by the round)."""
        kept = self._kept.get(job.id)
        if kept is None:
            return
        if job.status.terminal or rnd.status.terminal:
            del self._kept[job.id]
            return
        census = kept.census
        for c in rnd.run_changes:
            attempt = kept.runs[c.node].attempt
            before = (c.from_status.value, attempt)
            if before not in census:  # not the round it was: read it again next time
                del self._kept[job.id]
                return
            census[before] -= 1
            if not census[before]:
                del census[before]
            after = (c.to_status.value, attempt)
            census[after] = census.get(after, 0) + 1

    def forget(self, job_ids: Iterable[int]) -> None:
        for job_id in job_ids:
            self._kept.pop(job_id, None)


def command_for(job: Job, kind: str) -> str:
    message = wire.Run if kind == "run" else wire.Abort
    return wire.encode(message(job=job.id, attempt=job.attempt))


def commit_message(svc: Services, job: Job, node: str) -> str:
    """What a node needs to run its part of ``job``: secret values opened, and named in
    ``secret_env`` so that the agent masks them in the output it sends."""
    return commits_of(svc, job)(node)


def commits_of(svc: Services, job: Job) -> Callable[[str], str]:
    """``commit_message`` for each node of one job: its secrets opened once, not per node."""
    base = wire.Commit(
        job=job.id,
        attempt=job.attempt,
        command=job.command,
        argv=svc.secrets.plain_list(job.argv),
        env=svc.secrets.plain_env(job.env),
        secret_env=secret_names(job.env),
        dir=job.dir,
        run_timeout=job.run_timeout,
        capture_output=job.capture_output,
        node="",
        file=job.meta.get("file"),
        user=job.meta.get("user"),
        input_files=[
            wire.InputFile(id=f["id"], name=f["name"], size=f.get("size"), sha256=f.get("sha256"))
            for f in job.meta.get("input_files") or []
        ],
        outputs=job.meta.get("outputs"),
        files_cap=svc.settings.run_files_cap,
    )
    return wire.commit_per_node(base)


async def persist_round(svc: Services, tx: Tx, job: Job, rnd: JobRound, actor: str | None) -> Job:
    """Write a round's run changes and job moves through the transition writer; queue its
    commands."""
    done = await apply(
        svc,
        tx,
        [JobMove(job, c.to_status, actor, reason=c.reason) for c in rnd.job_changes],
        [
            RunMove(
                c.run_id,
                job.org_id,
                job.id,
                c.node,
                c.from_status,
                c.to_status,
                actor,
                reason=c.reason,
                exit_code=c.exit_code,
            )
            for c in rnd.run_changes
        ],
        now=rnd.now,
    )
    current = done.jobs.get(job.id, job)
    if rnd.job_changes and current.status is not rnd.job_changes[-1].to_status:
        raise RuntimeError(f"job {job.id} moved under a locked round")
    if current.cluster_id is not None and any(
        c.to_status is JobStatus.RUNNING for c in rnd.job_changes
    ):
        await _cluster_job_started(svc, tx, current)
    if rnd.commands:
        # The same few frames for every node (run, abort): each encoded once.
        frames = {kind: command_for(current, kind) for kind in {k for _, k in rnd.commands}}
        send_all(svc, tx, job.org_id, [(node, frames[kind]) for node, kind in rnd.commands])
    return current


async def _cluster_job_started(svc: Services, tx: Tx, job: Job) -> None:
    from jobyard.service.events import record

    assert job.cluster_id is not None
    await record(
        svc,
        tx,
        org_id=job.org_id,
        kind="cluster",
        subject_id=job.cluster_id,
        job_id=job.id,
        type="cluster.job_started",
        actor=None,
        reason=f"job {job.id} started on the cluster",
        data={"job_id": job.id},
        now=svc.clock.now(),
    )


async def apply_reports(
    svc: Services, reports: Sequence[Report], rounds: Rounds | None = None
) -> int:
    """Apply a batch of agent reports in one transaction; returns how many were stale.

    With ``rounds`` (the engine's), each job's round is taken from memory when it still
    matches the database, and kept up to date."""
    by_job: dict[int, list[Report]] = defaultdict(list)
    for r in reports:
        by_job[r.job_id].append(r)
    stale = 0
    try:
        async with svc.db.begin() as tx:
            now = svc.clock.now()
            for job_id in sorted(by_job):
                items = by_job[job_id]
                job = await tx.jobs.get_any(job_id, for_update=True)
                if job is None or job.org_id != items[0].org_id:
                    stale += len(items)
                    continue
                output = [r for r in items if r.kind == "output"]
                if output:
                    await _append_output(svc, tx, job, output)
                state_reports = [r for r in items if r.kind != "output"]
                if not state_reports:
                    continue
                if rounds is not None:
                    rnd = await rounds.round_of(tx, job, now)
                else:
                    rnd = await load_round(tx, job, now)
                for r in state_reports:
                    _apply(rnd, r)
                rnd.settle()
                stale += rnd.stale
                if rnd.run_changes or rnd.job_changes or rnd.commands:
                    job = await persist_round(svc, tx, job, rnd, actor=None)
                if rounds is not None:
                    rounds.wrote(job, rnd)
    except BaseException:
        if rounds is not None:
            rounds.forget(by_job)  # what they hold may not have been written
        raise
    return stale


def _apply(rnd: JobRound, r: Report) -> None:
    if r.kind == "ack_commit":
        rnd.vote(r.node, r.attempt, True)
    elif r.kind == "nack_commit":
        rnd.vote(r.node, r.attempt, False, r.reason)
    elif r.kind == "ack_run":
        rnd.run_started(r.node, r.attempt)
    elif r.kind == "result":
        rnd.finished(r.node, r.attempt, r.status or "failed", r.exit_code, r.reason)
    elif r.kind == "lost":
        rnd.node_lost(r.node, r.reason or "node lost")


async def _append_output(svc: Services, tx: Tx, job: Job, output: Iterable[Report]) -> None:
    if not job.capture_output:
        return
    merged: dict[tuple[str, str], list[str]] = defaultdict(list)
    for r in output:
        if r.stream in wire.STREAMS and r.data and r.attempt == job.attempt:
            merged[(r.node, r.stream)].append(r.data)
    for (node, stream), chunks in merged.items():
        run = await tx.jobs.run(job.id, node)
        if run is not None and run.attempt == job.attempt:
            data = mask_output(svc.secrets, job, "".join(chunks))
            await append_output(svc, tx, run, stream, data)
