"""Email on a real SMTP server (aiosmtpd on loopback): content, outages, crashes, the relay loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

from jobyard.dispatch.outbox import Relay
from jobyard.domain.jobs import NodeRunStatus
from jobyard.service import notifications as inbox
from jobyard.service import outbox as relay
from jobyard.service import watchers
from jobyard.service.context import Services
from jobyard.store import Database
from tests.notify.conftest import (
    configure,
    drain,
    eventually,
    finish_job,
    new_org,
    person,
    start_job,
)
from tests.notify.receivers import SmtpServer


async def test_an_email_has_text_html_and_a_link_to_the_job(
    nsvc: Services, smtp: SmtpServer
) -> None:
    org = await new_org(nsvc, "acme")
    alice = await person(nsvc, org, email="alice@example.com")
    job_id = await start_job(nsvc, alice, ("web1", "web2"))
    await finish_job(nsvc, job_id, {"web2": NodeRunStatus.CRASHED})
    assert await drain(nsvc) == 2  # in-app and email

    [msg] = smtp.messages
    assert msg["To"] == "alice@example.com"
    assert msg["From"] == "jobyard@example.com"
    assert msg["Subject"] == f"Job 'nightly' (#{job_id}) partially failed: 1 of 2 nodes failed"
    assert msg["Message-ID"].startswith("<jobyard.") and msg["Message-ID"].endswith("@example.com>")
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    url = f"http://testserver/jobs/{job_id}"
    assert url in text.get_content()
    assert "1 crashed, 1 succeeded" in text.get_content()
    assert f'href="{url}"' in html.get_content()
    assert (await inbox.list_notifications(nsvc, alice)).total == 1


async def test_an_smtp_outage_delays_but_every_email_arrives_once(
    nsvc: Services, smtp: SmtpServer
) -> None:
    org = await new_org(nsvc, "acme")
    alice = await person(nsvc, org)
    await smtp.stop()
    ids = [await start_job(nsvc, alice) for _ in range(3)]
    for job_id in ids:
        await finish_job(nsvc, job_id)

    channels = relay.Channels.from_settings(nsvc.settings)
    try:
        await drain(nsvc, channels)
        failed = await inbox.list_deliveries(nsvc, alice, channel="email", statuses=["pending"])
        assert failed.total == 3
        assert all(
            d.attempts >= 1 and "cannot reach the SMTP server" in (d.last_error or "")
            for d in failed.items
        )
        assert (await inbox.list_notifications(nsvc, alice)).total == 3  # in-app went through

        await smtp.start()

        async def all_sent() -> bool:
            await relay.relay_once(nsvc, channels)
            page = await inbox.list_deliveries(nsvc, alice, channel="email", statuses=["sent"])
            return page.total == 3

        await eventually(all_sent, what="the queued emails after the SMTP server came back")
        await drain(nsvc, channels)
    finally:
        await channels.close()
    subjects = Counter(str(m["Subject"]) for m in smtp.messages)
    assert subjects == Counter(f"Job 'nightly' (#{i}) completed" for i in ids)
    assert len(set(smtp.ids())) == 3


async def test_a_relay_that_dies_mid_send_is_taken_over_with_the_same_message_id(
    any_svc: Services, smtp: SmtpServer
) -> None:
    svc = configure(any_svc, smtp, outbox_lease=0.3)
    org = await new_org(svc, "acme")
    alice = await person(svc, org)
    job_id = await start_job(svc, alice)
    await finish_job(svc, job_id)
    await relay.deliver_in_app(svc)

    # A relay claims the email, sends it, and dies before recording that it did.
    async with svc.db.begin() as tx:
        now = svc.clock.now()
        [claimed] = await tx.notify.outbox.claim(["email"], now, now, 10)
    channels = relay.Channels.from_settings(svc.settings)
    assert channels.email is not None
    try:
        lost = relay.mail.build(
            sender="jobyard@example.com",
            to=alice.email,
            title=str(claimed.payload["title"]),
            text=str(claimed.payload["message"]),
            url=str(claimed.payload["url"]),
            msg_id=relay.mail.message_id(claimed.key, "example.com"),
        )
        assert (await channels.email.send_many([lost]))[0].ok

        # Its lease has run out: another relay takes the row over and sends it again.
        assert await drain(svc, channels) == 1
        assert await drain(svc, channels) == 0  # once recorded, never again
    finally:
        await channels.close()
    assert len(smtp.messages) == 2
    assert len(set(smtp.ids())) == 1  # the receiver sees the same Message-ID: a duplicate


async def test_a_refused_mailbox_is_not_retried(nsvc: Services, smtp: SmtpServer) -> None:
    org = await new_org(nsvc, "acme")
    nobody = await person(nsvc, org, email="nobody@example.com")
    job_id = await start_job(nsvc, nobody)
    await finish_job(nsvc, job_id)
    await drain(nsvc)
    [d] = (await inbox.list_deliveries(nsvc, nobody, channel="email")).items
    assert (d.status, d.attempts) == ("failed", 1)
    assert "no such mailbox" in (d.last_error or "")
    assert smtp.messages == []

    # Fixed on the mail server's side: sending it again is one call.
    again = await inbox.retry_delivery(nsvc, nobody, d.id)
    assert (again.status, again.attempts) == ("pending", 0)


async def test_the_relay_loop_delivers_soon_after_commit(nsvc: Services, smtp: SmtpServer) -> None:
    org = await new_org(nsvc, "acme")
    alice = await person(nsvc, org)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(Relay(nsvc).running())
        job_id = await start_job(nsvc, alice)
        await finish_job(nsvc, job_id)

        async def arrived() -> bool:
            return len(smtp.messages) == 1 and await inbox.unread_count(nsvc, alice) == 1

        await eventually(arrived, timeout=5, what="the relay loop to deliver")


async def test_two_relays_on_one_database_send_each_email_once(
    nsvc: Services, smtp: SmtpServer
) -> None:
    """Two replicas' relays drain the same outbox at once (SKIP LOCKED on PostgreSQL)."""
    org = await new_org(nsvc, "acme")
    people = [await person(nsvc, org) for _ in range(5)]
    for who in people:
        job_id = await start_job(nsvc, who)
        for other in people:
            if other is not who:
                await watchers.watch(nsvc, other, "job", job_id)
        await finish_job(nsvc, job_id)
    other_db = Database(nsvc.db.url)
    try:
        replica = Services(db=other_db, settings=nsvc.settings)
        await asyncio.gather(drain(nsvc), drain(replica))
    finally:
        await other_db.close()
    assert len(smtp.messages) == 25
    assert len(set(smtp.ids())) == 25
    for who in people:
        assert (await inbox.list_notifications(nsvc, who)).total == 5
