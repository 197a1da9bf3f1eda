"""Webhook subscriptions and signed deliveries to a real receiver on loopback."""

from __future__ import annotations

import json

import pytest

from jobyard.domain.accounts import Role
from jobyard.domain.errors import Forbidden, Invalid, NotFound
from jobyard.notify import webhooks as signing
from jobyard.service import outbox as relay
from jobyard.service import webhooks
from jobyard.service.context import Services
from tests.notify.conftest import (
    configure,
    drain,
    eventually,
    fail_quorum,
    finish_job,
    new_org,
    person,
    start_job,
)
from tests.notify.receivers import WebhookReceiver


async def test_a_subscription_receives_signed_json(
    qsvc: Services, receiver: WebhookReceiver
) -> None:
    org = await new_org(qsvc, "acme")
    admin = await person(qsvc, org, Role.ADMIN)
    sub = await webhooks.create_subscription(
        qsvc, admin, receiver.url, ["job.completed", "job.failed"], description="ops"
    )
    assert sub.secret.startswith("whsec_") and sub.enabled
    ok = await start_job(qsvc, admin)
    await finish_job(qsvc, ok)
    bad = await start_job(qsvc, admin)
    await fail_quorum(qsvc, bad)
    await drain(qsvc)

    assert len(receiver.received) == 2
    bodies = []
    for got in receiver.received:
        assert signing.verify(sub.secret, got.headers, got.body)
        assert got.headers["content-type"] == "application/json"
        assert got.headers["webhook-id"].endswith(f".webhook.s{sub.id}")
        bodies.append(json.loads(got.body))
    assert [(b["type"], b["data"]["subject"]["id"]) for b in bodies] == [
        ("job.completed", ok),
        ("job.failed", bad),
    ]
    assert bodies[1]["data"]["to_status"] == "quorum_failed"
    assert bodies[0]["data"]["subject"]["url"] == f"http://testserver/jobs/{ok}"
    page = await webhooks.subscription_deliveries(qsvc, admin, sub.id)
    assert [d.status for d in page.items] == ["sent", "sent"]


async def test_failures_are_retried_with_the_same_id_then_succeed(
    any_svc: Services, receiver: WebhookReceiver
) -> None:
    qsvc = configure(any_svc, outbox_base=0.5, outbox_cap=0.5)
    org = await new_org(qsvc, "acme")
    admin = await person(qsvc, org, Role.ADMIN)
    sub = await webhooks.create_subscription(qsvc, admin, receiver.url, ["*"])
    receiver.status = 503
    job_id = await start_job(qsvc, admin)  # job.submitted
    await drain(qsvc)
    [first] = receiver.received
    [d] = (await webhooks.subscription_deliveries(qsvc, admin, sub.id)).items
    assert d.status == "pending" and d.attempts == 1
    assert d.last_error is not None and "HTTP 503" in d.last_error
    assert (await webhooks.get_subscription(qsvc, admin, sub.id)).consecutive_failures == 1

    receiver.status = 200
    channels = relay.Channels.from_settings(qsvc.settings)
    try:

        async def sent() -> bool:
            await relay.relay_once(qsvc, channels)
            page = await webhooks.subscription_deliveries(qsvc, admin, sub.id, statuses=["sent"])
            return page.total == 1

        await eventually(sent, what="the retried webhook")
    finally:
        await channels.close()
    assert [r.headers["webhook-id"] for r in receiver.received[1:]] == [first.headers["webhook-id"]]
    assert json.loads(receiver.received[-1].body)["data"]["subject"]["id"] == job_id
    healthy = await webhooks.get_subscription(qsvc, admin, sub.id)
    assert healthy.consecutive_failures == 0 and healthy.last_success_at is not None


async def test_a_failing_subscription_is_disabled_with_the_reason(
    any_svc: Services, receiver: WebhookReceiver
) -> None:
    svc = configure(any_svc, outbox_disable_after=3, outbox_base=0.0)
    org = await new_org(svc, "acme")
    admin = await person(svc, org, Role.ADMIN)
    sub = await webhooks.create_subscription(svc, admin, receiver.url, ["job.submitted"])
    receiver.status = 500
    for _ in range(2):
        await start_job(svc, admin)
    await drain(svc)
    disabled = await webhooks.get_subscription(svc, admin, sub.id)
    assert not disabled.enabled
    assert disabled.disabled_reason is not None
    assert disabled.disabled_reason.startswith("disabled after 3 failed deliveries in a row")
    assert "HTTP 500" in disabled.disabled_reason
    failed = await webhooks.subscription_deliveries(svc, admin, sub.id, statuses=["failed"])
    assert failed.total == 2

    # Nothing more is queued for it while disabled.
    await start_job(svc, admin)
    assert (await webhooks.subscription_deliveries(svc, admin, sub.id)).total == 2

    receiver.status = 200
    enabled = await webhooks.update_subscription(svc, admin, sub.id, {"enabled": True})
    assert enabled.enabled and enabled.consecutive_failures == 0
    assert enabled.disabled_reason is None
    await start_job(svc, admin)
    await drain(svc)
    assert receiver.received[-1].headers["webhook-id"]
    assert (
        await webhooks.subscription_deliveries(svc, admin, sub.id, statuses=["sent"])
    ).total == 1


async def test_private_addresses_are_refused_unless_allowed(
    any_svc: Services, receiver: WebhookReceiver
) -> None:
    svc = configure(any_svc)
    org = await new_org(svc, "acme")
    admin = await person(svc, org, Role.ADMIN)
    sub = await webhooks.create_subscription(svc, admin, receiver.url, ["job.submitted"])

    svc.settings = svc.settings.replace(webhook_allow_private=False)
    with pytest.raises(Invalid, match="loopback"):
        await webhooks.create_subscription(svc, admin, "http://localhost:1/x", ["*"])
    with pytest.raises(Invalid, match="private"):
        await webhooks.create_subscription(svc, admin, "http://10.0.0.8/x", ["*"])
    with pytest.raises(Invalid, match="link-local"):
        await webhooks.update_subscription(
            svc, admin, sub.id, {"url": "http://169.254.169.254/latest/meta-data"}
        )

    # Checked again at delivery time: the setting changed after the subscription was made.
    await start_job(svc, admin)
    await drain(svc)
    assert receiver.received == []
    [d] = (await webhooks.subscription_deliveries(svc, admin, sub.id)).items
    assert d.status == "pending" and "loopback" in (d.last_error or "")


async def test_only_admins_manage_webhooks_of_their_organization(
    qsvc: Services, receiver: WebhookReceiver
) -> None:
    org = await new_org(qsvc, "acme")
    admin = await person(qsvc, org, Role.ADMIN)
    user = await person(qsvc, org)
    with pytest.raises(Forbidden):
        await webhooks.create_subscription(qsvc, user, receiver.url, ["*"])
    sub = await webhooks.create_subscription(qsvc, admin, receiver.url, ["*"])
    with pytest.raises(Forbidden):
        await webhooks.list_subscriptions(qsvc, user)
    other = await person(qsvc, await new_org(qsvc, "other"), Role.ADMIN)
    with pytest.raises(NotFound):
        await webhooks.get_subscription(qsvc, other, sub.id)
    assert await webhooks.list_subscriptions(qsvc, other) == []
    with pytest.raises(Invalid, match="unknown event type"):
        await webhooks.update_subscription(qsvc, admin, sub.id, {"event_types": ["nope"]})
    with pytest.raises(Invalid, match="whsec_"):
        await webhooks.update_subscription(qsvc, admin, sub.id, {"secret": "hunter2"})
    mine = signing.new_secret()
    changed = await webhooks.update_subscription(qsvc, admin, sub.id, {"secret": mine})
    assert changed.secret == mine
    await webhooks.delete_subscription(qsvc, admin, sub.id)
    assert await webhooks.list_subscriptions(qsvc, admin) == []
