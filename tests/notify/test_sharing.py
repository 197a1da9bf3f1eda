"""Sharing a job with a user by email (Rescale): read access, listing, notification, unshare."""

from __future__ import annotations

import pytest

from jobyard.domain.accounts import Role
from jobyard.domain.errors import Invalid, NotFound
from jobyard.service import jobs, sharing, watchers
from jobyard.service import notifications as inbox
from jobyard.service.context import Services
from jobyard.store.jobs import JobFilter
from tests.notify.conftest import drain, finish_job, new_org, person, start_job


async def test_a_user_of_another_organization_reads_a_shared_job(qsvc: Services) -> None:
    acme = await new_org(qsvc, "acme")
    alice = await person(qsvc, acme, email="alice@example.com")
    partner = await new_org(qsvc, "partner")
    bob = await person(qsvc, partner, email="bob@example.com")
    job_id = await start_job(qsvc, alice)
    other_job = await start_job(qsvc, alice)
    with pytest.raises(NotFound):
        await jobs.get_job(qsvc, bob, job_id)

    share = await sharing.share_job(qsvc, alice, job_id, "Bob@Example.com", "have a look")
    assert (share.email, share.message, share.shared_by) == (
        "bob@example.com",
        "have a look",
        alice.user_id,
    )
    assert (await jobs.get_job(qsvc, bob, job_id)).job.id == job_id
    assert (await jobs.job_history(qsvc, bob, job_id)).total >= 1
    listed = await jobs.list_jobs(qsvc, bob, JobFilter())
    assert [v.job.id for v in listed.items] == [job_id]
    with pytest.raises(NotFound):
        await jobs.get_job(qsvc, bob, other_job)
    assert await sharing.shared_with(qsvc, alice, [job_id, other_job]) == {
        job_id: ["bob@example.com"],
        other_job: [],
    }
    assert await sharing.shared_with(qsvc, bob, [job_id, other_job]) == {
        job_id: ["bob@example.com"]
    }

    # Reading only: the job's organization still owns every change.
    with pytest.raises(NotFound):
        await jobs.stop_job(qsvc, bob, job_id)
    with pytest.raises(NotFound):
        await sharing.share_job(qsvc, bob, job_id, "alice@example.com")

    # The recipient was told, and may watch the job like a member.
    await drain(qsvc)
    [note] = (await inbox.list_notifications(qsvc, bob)).items
    assert note.title == f"alice@example.com shared Job 'nightly' (#{job_id}) with you"
    assert "have a look" in note.message
    await watchers.watch(qsvc, bob, "job", job_id)
    await finish_job(qsvc, job_id)
    await drain(qsvc)
    assert (await inbox.list_notifications(qsvc, bob)).total == 2

    await sharing.unshare_job(qsvc, alice, job_id, "bob@example.com")
    with pytest.raises(NotFound):
        await jobs.get_job(qsvc, bob, job_id)
    assert (await jobs.list_jobs(qsvc, bob, JobFilter())).total == 0
    assert await sharing.list_shares(qsvc, alice, job_id) == []
    assert bob.user_id not in [
        w.user_id for w in await watchers.list_watchers(qsvc, alice, "job", job_id)
    ]


async def test_share_rules(qsvc: Services) -> None:
    acme = await new_org(qsvc, "acme")
    alice = await person(qsvc, acme, email="alice@example.com")
    carol = await person(qsvc, acme, email="carol@example.com")
    admin = await person(qsvc, acme, Role.ADMIN)
    viewer = await person(qsvc, acme, Role.VIEWER, email="vic@example.com")
    job_id = await start_job(qsvc, alice)

    with pytest.raises(NotFound, match="no user with email"):
        await sharing.share_job(qsvc, alice, job_id, "ghost@example.com")
    with pytest.raises(Invalid, match="not an email"):
        await sharing.share_job(qsvc, alice, job_id, "ghost")
    with pytest.raises(Invalid, match="created job"):
        await sharing.share_job(qsvc, alice, job_id, "alice@example.com")
    with pytest.raises(NotFound, match="only its creator or an admin"):
        await sharing.share_job(qsvc, carol, job_id, "vic@example.com")

    await sharing.share_job(qsvc, admin, job_id, "vic@example.com", "first")
    await sharing.share_job(qsvc, alice, job_id, "carol@example.com")
    renewed = await sharing.share_job(qsvc, alice, job_id, "vic@example.com", "second")
    assert renewed.message == "second"
    assert [s.email for s in await sharing.list_shares(qsvc, viewer, job_id)] == [
        "vic@example.com",
        "carol@example.com",
    ]
    # A recipient may give a share up; nobody else but the creator or an admin may take it.
    with pytest.raises(NotFound):
        await sharing.unshare_job(qsvc, carol, job_id, "vic@example.com")
    await sharing.unshare_job(qsvc, viewer, job_id, "vic@example.com")
    with pytest.raises(NotFound, match="not shared with"):
        await sharing.unshare_job(qsvc, alice, job_id, "vic@example.com")


async def test_a_shared_jobs_files_are_readable_by_the_recipient(qsvc: Services) -> None:
    import dataclasses

    from jobyard.service import outputs

    acme = await new_org(qsvc, "acme")
    alice = await person(qsvc, acme, email="alice@example.com")
    partner = await new_org(qsvc, "partner")
    bob = await person(qsvc, partner, email="bob@example.com")
    job_id = await start_job(qsvc, alice)
    view = await jobs.get_job(qsvc, alice, job_id)
    node = view.runs[0].node_name
    agent = dataclasses.replace(alice, role=Role.AGENT)
    stored = await outputs.store_file(qsvc, agent, job_id, view.job.attempt, node, "r.txt", b"ok")
    assert stored is not None
    with pytest.raises(NotFound):
        await outputs.read_file(qsvc, bob, stored.id)
    await sharing.share_job(qsvc, alice, job_id, "bob@example.com")
    got, data = await outputs.read_file(qsvc, bob, stored.id)
    assert (got.name, data) == ("r.txt", b"ok")
    assert [f.id for f in await outputs.list_files(qsvc, bob, job_id)] == [stored.id]
