"""Watchers of jobs and clusters, and who is told what (service layer, both databases)."""

from __future__ import annotations

import pytest

from jobyard.domain.accounts import Role
from jobyard.domain.clusters import ClusterStatus
from jobyard.domain.errors import Forbidden, NotFound
from jobyard.domain.jobs import NodeRunStatus
from jobyard.service import clusters, jobs, watchers
from jobyard.service import notifications as inbox
from jobyard.service.context import Services
from jobyard.service.events import record
from tests.notify.conftest import drain, fail_quorum, finish_job, new_org, person, start_job


async def titles(svc: Services, who: object) -> list[str]:
    page = await inbox.list_notifications(svc, who, order="time")  # type: ignore[arg-type]
    return [n.title for n in page.items]


async def test_the_creator_watches_and_others_may_join_and_leave(qsvc: Services) -> None:
    org = await new_org(qsvc, "acme")
    alice = await person(qsvc, org, email="alice@example.com")
    viewer = await person(qsvc, org, Role.VIEWER)
    job_id = await start_job(qsvc, alice)

    listed = await watchers.list_watchers(qsvc, viewer, "job", job_id)
    assert [(w.user_id, w.display_name) for w in listed] == [(alice.user_id, "alice")]

    first = await watchers.watch(qsvc, viewer, "job", job_id)
    again = await watchers.watch(qsvc, viewer, "job", job_id)
    assert first.created and not again.created
    assert again.created_at == first.created_at
    assert await watchers.is_watching(qsvc, viewer, "job", job_id)
    assert len(await watchers.list_watchers(qsvc, alice, "job", job_id)) == 2

    assert await watchers.unwatch(qsvc, viewer, "job", job_id)
    assert not await watchers.unwatch(qsvc, viewer, "job", job_id)
    assert not await watchers.is_watching(qsvc, viewer, "job", job_id)


async def test_admins_add_and_remove_other_members(qsvc: Services) -> None:
    org = await new_org(qsvc, "acme")
    admin = await person(qsvc, org, Role.ADMIN)
    bob = await person(qsvc, org)
    carol = await person(qsvc, org)
    job_id = await start_job(qsvc, admin)

    with pytest.raises(Forbidden):
        await watchers.watch(qsvc, bob, "job", job_id, user_id=carol.user_id)
    await watchers.watch(qsvc, admin, "job", job_id, user_id=carol.user_id)
    ids = [w.user_id for w in await watchers.list_watchers(qsvc, bob, "job", job_id)]
    assert ids == [admin.user_id, carol.user_id]
    await watchers.unwatch(qsvc, admin, "job", job_id, user_id=carol.user_id)
    assert carol.user_id not in [
        w.user_id for w in await watchers.list_watchers(qsvc, bob, "job", job_id)
    ]

    other = await new_org(qsvc, "other")
    stranger = await person(qsvc, other)
    with pytest.raises(NotFound, match="no member"):
        await watchers.watch(qsvc, admin, "job", job_id, user_id=stranger.user_id)


async def test_objects_of_another_organization_answer_not_found(qsvc: Services) -> None:
    alice = await person(qsvc, await new_org(qsvc, "acme"))
    mallory = await person(qsvc, await new_org(qsvc, "evil"))
    job_id = await start_job(qsvc, alice)
    cluster = await clusters.create_cluster(qsvc, alice, "etl", 1)
    for kind, subject in (("job", job_id), ("cluster", cluster.id)):
        with pytest.raises(NotFound):
            await watchers.watch(qsvc, mallory, kind, subject)
        with pytest.raises(NotFound):
            await watchers.list_watchers(qsvc, mallory, kind, subject)


async def test_job_watchers_hear_completed_failed_and_stopped(qsvc: Services) -> None:
    org = await new_org(qsvc, "acme")
    alice = await person(qsvc, org)
    bob = await person(qsvc, org)

    ok = await start_job(qsvc, alice, ("a", "b"))
    await watchers.watch(qsvc, bob, "job", ok)
    await finish_job(qsvc, ok)
    bad = await start_job(qsvc, alice, ("a", "b"))
    await finish_job(qsvc, bad, {"b": NodeRunStatus.FAILED})
    quorum = await start_job(qsvc, alice)
    await fail_quorum(qsvc, quorum)
    stopped = await start_job(qsvc, alice)
    await jobs.stop_job(qsvc, alice, stopped, reason="not needed")
    await drain(qsvc)

    assert await titles(qsvc, alice) == [
        f"Job 'nightly' (#{stopped}) stopped",
        f"Job 'nightly' (#{quorum}) quorum failed",
        f"Job 'nightly' (#{bad}) partially failed: 1 of 2 nodes failed",
        f"Job 'nightly' (#{ok}) completed",
    ]
    assert await titles(qsvc, bob) == [f"Job 'nightly' (#{ok}) completed"]
    page = await inbox.list_notifications(qsvc, alice, order="time")
    assert "1 failed, 1 succeeded" in page.items[2].message
    assert "not needed" in page.items[0].message
    assert page.items[0].url == f"http://testserver/jobs/{stopped}"


async def test_cluster_watchers_hear_status_and_new_jobs(qsvc: Services) -> None:
    org = await new_org(qsvc, "acme")
    alice = await person(qsvc, org)
    cluster = await clusters.create_cluster(qsvc, alice, "etl", 1)
    assert [
        w.user_id for w in await watchers.list_watchers(qsvc, alice, "cluster", cluster.id)
    ] == [alice.user_id]
    async with qsvc.db.begin() as tx:
        current = await tx.clusters.get(cluster.org_id, cluster.id)
        assert current is not None
        for status in (ClusterStatus.CREATING, ClusterStatus.AVAILABLE):
            current = await clusters.move_cluster(qsvc, tx, current, status, actor=None)
        await record(
            qsvc,
            tx,
            org_id=cluster.org_id,
            kind="cluster",
            subject_id=cluster.id,
            job_id=99,
            type="cluster.job_started",
            data={"job_id": 99},
            now=qsvc.clock.now(),
        )
        current = await clusters.move_cluster(qsvc, tx, current, ClusterStatus.ERROR, actor=None)
    await drain(qsvc)
    assert await titles(qsvc, alice) == [
        f"Cluster 'etl' (#{cluster.id}) is error",
        f"Job #99 started on Cluster 'etl' (#{cluster.id})",
        f"Cluster 'etl' (#{cluster.id}) is available",
    ]


async def test_approvers_hear_that_a_decision_waits(qsvc: Services) -> None:
    org = await new_org(qsvc, "acme")
    alice = await person(qsvc, org)
    approver = await person(qsvc, org)
    job_id = await start_job(qsvc, alice)
    async with qsvc.db.begin() as tx:
        await record(
            qsvc,
            tx,
            org_id=alice.org_id,
            kind="job",
            subject_id=job_id,
            job_id=job_id,
            type="approval.requested",
            data={"approvers": [approver.user_id], "message": "deploy to prod?"},
            now=qsvc.clock.now(),
        )
    await drain(qsvc)
    page = await inbox.list_notifications(qsvc, approver)
    assert [n.title for n in page.items] == [f"Job 'nightly' (#{job_id}) waits for your approval"]
    assert "deploy to prod?" in page.items[0].message
    assert await titles(qsvc, alice) == []


async def test_input_requests_and_notification_tasks_reach_their_people(qsvc: Services) -> None:
    org = await new_org(qsvc, "acme")
    alice = await person(qsvc, org)
    bob = await person(qsvc, org)
    carol = await person(qsvc, org)
    job_id = await start_job(qsvc, alice)
    async with qsvc.db.begin() as tx:
        for type, data in (
            ("input.requested", {"requested_by": alice.user_id, "task": "deploy"}),
            (
                "notification.requested",
                {
                    "recipients": [bob.user_id, carol.user_id],
                    "message": "Backups done\nAll 3 volumes copied.",
                    "task": "backup-report",
                },
            ),
        ):
            await record(
                qsvc,
                tx,
                org_id=alice.org_id,
                kind="job",
                subject_id=job_id,
                job_id=job_id,
                type=type,
                data=data,
                now=qsvc.clock.now(),
            )
    await drain(qsvc)
    assert await titles(qsvc, alice) == [f"Job 'nightly' (#{job_id}) waits for your input"]
    for who in (bob, carol):
        [note] = (await inbox.list_notifications(qsvc, who)).items
        assert note.kind == "task.message"
        assert note.title == "Backups done"
        assert "All 3 volumes copied." in note.message
        assert "task 'backup-report'" in note.message


async def test_outbox_rows_roll_back_with_the_event(qsvc: Services) -> None:
    org = await new_org(qsvc, "acme")
    alice = await person(qsvc, org)
    job_id = await start_job(qsvc, alice)
    with pytest.raises(RuntimeError):
        async with qsvc.db.begin() as tx:
            await record(
                qsvc,
                tx,
                org_id=alice.org_id,
                kind="job",
                subject_id=job_id,
                job_id=job_id,
                type="job.status",
                from_status="running",
                to_status="aborted",
                now=qsvc.clock.now(),
            )
            assert await tx.notify.outbox.counts() == {("in_app", "pending"): 1}  # queued
            raise RuntimeError("the use case failed after the event")
    async with qsvc.db.read() as tx:
        assert await tx.notify.outbox.counts() == {}


async def test_deleting_a_job_forgets_its_watchers(qsvc: Services) -> None:
    org = await new_org(qsvc, "acme")
    alice = await person(qsvc, org)
    job_id = await start_job(qsvc, alice)
    await jobs.stop_job(qsvc, alice, job_id)
    await jobs.delete_job(qsvc, alice, job_id)
    async with qsvc.db.read() as tx:
        assert await tx.notify.watchers.of("job", job_id) == []
