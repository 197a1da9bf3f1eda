"""The in-app inbox and per-user channel settings (service layer, both databases)."""

from __future__ import annotations

import pytest

from jobyard.domain.errors import Invalid, NotFound
from jobyard.service import notifications as inbox
from jobyard.service.context import Services
from tests.notify.conftest import drain, finish_job, new_org, person, start_job
from tests.notify.receivers import SmtpServer


async def test_unread_first_count_and_mark_read(qsvc: Services) -> None:
    org = await new_org(qsvc, "acme")
    alice = await person(qsvc, org)
    ids = [await start_job(qsvc, alice) for _ in range(3)]
    for job_id in ids:
        await finish_job(qsvc, job_id)
    assert await drain(qsvc) == 3
    assert await inbox.unread_count(qsvc, alice) == 3

    newest_first = await inbox.list_notifications(qsvc, alice, order="time")
    assert [n.subject_id for n in newest_first.items] == ids[::-1]
    assert all(n.last_read_at is None for n in newest_first.items)

    oldest = newest_first.items[-1]
    read = await inbox.mark_read(qsvc, alice, newest_first.items[0].id)
    assert read.last_read_at is not None
    again = await inbox.mark_read(qsvc, alice, newest_first.items[0].id)
    assert again.last_read_at == read.last_read_at
    assert await inbox.unread_count(qsvc, alice) == 2

    unread_first = await inbox.list_notifications(qsvc, alice, order="unread")
    assert [n.subject_id for n in unread_first.items] == [ids[1], ids[0], ids[2]]
    only = await inbox.list_notifications(qsvc, alice, unread_only=True, limit=1)
    assert only.total == 2 and len(only.items) == 1
    assert (await inbox.notifications_after(qsvc, alice, oldest.id))[0].subject_id == ids[1]

    assert await inbox.mark_all_read(qsvc, alice) == 2
    assert await inbox.unread_count(qsvc, alice) == 0
    with pytest.raises(Invalid):
        await inbox.list_notifications(qsvc, alice, order="random")


async def test_an_inbox_is_private(qsvc: Services) -> None:
    org = await new_org(qsvc, "acme")
    alice = await person(qsvc, org)
    bob = await person(qsvc, org)
    job_id = await start_job(qsvc, alice)
    await finish_job(qsvc, job_id)
    await drain(qsvc)
    mine = (await inbox.list_notifications(qsvc, alice)).items[0]
    with pytest.raises(NotFound):
        await inbox.mark_read(qsvc, bob, mine.id)
    with pytest.raises(NotFound):
        await inbox.get_notification(qsvc, bob, mine.id)
    assert await inbox.mark_all_read(qsvc, bob) == 0
    assert await inbox.unread_count(qsvc, alice) == 1


async def test_settings_choose_channels_per_kind(nsvc: Services, smtp: SmtpServer) -> None:
    org = await new_org(nsvc, "acme")
    alice = await person(nsvc, org)
    defaults = await inbox.get_settings(nsvc, alice)
    assert {p.kind for p in defaults} >= {"job.completed", "job.failed", "cluster.available"}
    assert all(p.in_app and p.email for p in defaults)

    changed = await inbox.put_settings(
        nsvc, alice, {"job.completed": {"email": False}, "job.failed": {"in_app": False}}
    )
    by_kind = {p.kind: p for p in changed}
    assert (by_kind["job.completed"].in_app, by_kind["job.completed"].email) == (True, False)
    assert (by_kind["job.failed"].in_app, by_kind["job.failed"].email) == (False, True)

    ok = await start_job(nsvc, alice)
    await finish_job(nsvc, ok)
    await drain(nsvc)
    assert [n.subject_id for n in (await inbox.list_notifications(nsvc, alice)).items] == [ok]
    assert smtp.messages == []

    with pytest.raises(Invalid, match="unknown notification kind"):
        await inbox.put_settings(nsvc, alice, {"job.exploded": {"email": True}})
    with pytest.raises(Invalid, match="unknown channel"):
        await inbox.put_settings(nsvc, alice, {"job.failed": {"sms": True}})
    with pytest.raises(Invalid, match="true or false"):
        await inbox.put_settings(nsvc, alice, {"job.failed": {"email": "yes"}})
