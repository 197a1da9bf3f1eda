"""From events to deliveries: the observer that fills the outbox, the relay that empties it.

The observer runs inside the transaction that records an event, so the outbox rows
(one per recipient per channel, plus one per matching webhook subscription) commit
or roll back with the transition itself. The relay (``dispatch/outbox.py``) then:

- delivers in-app rows in one transaction that writes the inbox rows and removes the
  outbox rows, so each notification lands exactly once;
- claims email and webhook rows with a lease, sends them outside any transaction,
  and marks them sent, or reschedules them with exponential backoff. A relay that
  dies mid-send leaves ``sending`` rows whose lease expires: they are sent again with
  the same Message-ID / webhook-id, which receivers use to drop the duplicate.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import Message as EmailMessage
from typing import Any

import orjson

from jobyard.domain.notifications import (
    Channel,
    Delivery,
    Kind,
    RetryPolicy,
    Subscription,
    kind_of,
    needs_runs,
    subscribed,
)
from jobyard.domain.records import Event
from jobyard.notify import email as mail
from jobyard.notify.messages import About, Message, compose
from jobyard.notify.outcome import Outcome
from jobyard.notify.webhooks import WebhookSender
from jobyard.service.context import Services
from jobyard.settings import Settings
from jobyard.store import Tx
from jobyard.store.notify import Audience, audience_of_users, audience_of_watchers

log = logging.getLogger("jobyard.notify")

# Hub topics: the relay wakes on OUTBOX; an inbox's live stream wakes on inbox:{user_id}.
OUTBOX = "outbox"


def inbox_topic(user_id: int) -> str:
    return f"inbox:{user_id}"


_WATCHED = {
    Kind.JOB_COMPLETED: "job",
    Kind.JOB_FAILED: "job",
    Kind.JOB_STOPPED: "job",
    Kind.CLUSTER_AVAILABLE: "cluster",
    Kind.CLUSTER_TERMINATED: "cluster",
    Kind.CLUSTER_ERROR: "cluster",
    Kind.STACK_RUN_ENDED: "stack_run",
    Kind.CLUSTER_JOB_STARTED: "cluster",
}


def policy(settings: Settings) -> RetryPolicy:
    """The retry policy of the settings; ``outbox_<field>`` in ``settings.extra`` overrides
    any field (tests shorten leases and thresholds that way)."""
    overrides: dict[str, Any] = {
        "base": settings.outbox_retry_base,
        "cap": settings.outbox_retry_cap,
    }
    for f in dataclasses.fields(RetryPolicy):
        if f"outbox_{f.name}" in settings.extra:
            overrides[f.name] = type(getattr(RetryPolicy(), f.name))(
                settings.extra[f"outbox_{f.name}"]
            )
    return RetryPolicy(**overrides)


def email_enabled(settings: Settings) -> bool:
    return bool(settings.smtp_host)


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _ids(value: Any) -> list[int]:
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, int) and not isinstance(v, bool)]


# -- the observer


async def notify_on_event(svc: Services, tx: Tx, event: Event) -> None:
    """Make the creator a watcher; queue the deliveries an event calls for."""
    if event.type == "job.created" and event.kind == "job":
        await tx.notify.watchers.add_creator("job", event.subject_id, event.created_at)
        return
    if event.type == "cluster.created" and event.kind == "cluster":
        await tx.notify.watchers.add_creator("cluster", event.subject_id, event.created_at)
    if event.type == "stack_run.created" and event.kind == "stack_run":
        await tx.notify.watchers.add_creator("stack_run", event.subject_id, event.created_at)
        return
    if kind_of(event, []) is None:
        return
    job_id = event.job_id if event.job_id is not None else event.subject_id
    runs = await tx.notify.run_states(job_id) if needs_runs(event) else None
    kind = kind_of(event, runs)
    if kind is None:
        return
    people = _audience(event, kind)
    hooks = [
        s for s in await _subscriptions(svc, tx, event.org_id) if subscribed(s.event_types, kind)
    ]
    if people is None and not hooks:
        return
    about = await _about(tx, event, kind, runs)
    message = compose(kind, about, svc.settings.base_url)
    queued = 0
    if people is not None:
        payload = {
            "title": message.title,
            "message": message.text,
            "url": message.url,
            "subject_kind": about.subject_kind,
            "subject_id": about.subject_id,
            "job_id": about.job_id,
        }
        channels = [Channel.IN_APP] + ([Channel.EMAIL] if email_enabled(svc.settings) else [])
        for channel in channels:
            queued += await tx.notify.outbox.add_for_audience(
                people,
                channel.value,
                org_id=event.org_id,
                event_id=event.id,
                kind=kind.value,
                payload=payload,
                now=event.created_at,
            )
    rows = _webhook_rows(svc, event, kind, about, message, hooks)
    await tx.notify.outbox.add_many(rows)
    queued += len(rows)
    if queued:
        tx.after_commit(lambda: svc.hub.publish(OUTBOX, queued))


# Every job's submit and start asks for the organization's webhook subscriptions: they are
# kept for a moment per process. A change made here is seen at once (``forget_subscriptions``);
# one made on another replica within SUBSCRIPTIONS_TTL, and a delivery queued for a
# subscription disabled meanwhile fails with that reason instead of being sent.
SUBSCRIPTIONS_TTL = 2.0


async def notify_on_events(svc: Services, tx: Tx, events: Sequence[Event]) -> None:
    """``notify_on_event`` for many events at once (a scheduler pass starts hundreds of
    jobs): the creators of the new jobs watch them in one statement, before the events
    that may notify watchers; every other event as usual."""
    created = [e for e in events if e.type == "job.created" and e.kind == "job"]
    if created:
        await tx.notify.watchers.add_creators(
            "job", [e.subject_id for e in created], created[0].created_at
        )
    for event in events:
        if not (event.type == "job.created" and event.kind == "job"):
            await notify_on_event(svc, tx, event)


async def _subscriptions(svc: Services, tx: Tx, org_id: int) -> list[Subscription]:
    cache = svc.runtime.subscriptions
    now = time.monotonic()
    found = cache.get(org_id)
    if found is not None and found[0] > now:
        return found[1]
    subs = await tx.notify.webhooks.of_org(org_id, enabled_only=True)
    cache[org_id] = (now + SUBSCRIPTIONS_TTL, subs)
    return subs


def forget_subscriptions(svc: Services, org_id: int) -> None:
    """Drop the cached subscriptions of an organization (after a change to them)."""
    svc.runtime.subscriptions.pop(org_id, None)


def _audience(event: Event, kind: Kind) -> Audience | None:
    """Who is told about an event, as a query (the watchers may be thousands)."""
    watched = _WATCHED.get(kind)
    if watched is not None:
        return audience_of_watchers(watched, event.subject_id, kind)
    data = event.data or {}
    named: list[int] = []
    if kind is Kind.JOB_SHARED:
        named = _ids([data.get("user_id")])
    elif kind is Kind.APPROVAL_REQUESTED:
        named = _ids(data.get("approvers"))
    elif kind is Kind.INPUT_REQUESTED:
        named = _ids([data.get("requested_by")])
    elif kind is Kind.TASK_MESSAGE:
        named = _ids(data.get("recipients"))
    return audience_of_users(named, kind) if named else None


async def _about(tx: Tx, event: Event, kind: Kind, runs: list[str] | None) -> About:
    data = event.data or {}
    if event.kind == "cluster":
        cluster = await tx.clusters.get(event.org_id, event.subject_id)
        started = event.job_id if event.job_id is not None else data.get("job_id")
        return About(
            subject_kind="cluster",
            subject_id=event.subject_id,
            name=cluster.name if cluster else None,
            status=event.to_status,
            reason=event.reason,
            actor=event.actor,
            job_id=started if isinstance(started, int) else None,
        )
    if event.kind == "stack_run":
        return About(
            subject_kind="stack_run",
            subject_id=event.subject_id,
            name=str(data["stack"]) if data.get("stack") else None,
            status=event.to_status,
            reason=event.reason,
            actor=event.actor,
        )
    job_id = event.job_id if event.job_id is not None else event.subject_id
    name = await tx.notify.job_name(job_id)
    noted = (Kind.JOB_SHARED, Kind.APPROVAL_REQUESTED, Kind.TASK_MESSAGE, Kind.INPUT_REQUESTED)
    note = data.get("message") if kind in noted else None
    return About(
        subject_kind="job",
        subject_id=job_id,
        name=name,
        task=str(data["task"]) if data.get("task") else None,
        status=event.to_status,
        reason=event.reason,
        actor=event.actor,
        note=str(note) if note else None,
        runs=dict(Counter(runs)) if runs else None,
        job_id=job_id,
    )


def _base(event: Event, kind: Kind, channel: Channel, key: str, now: dt.datetime) -> dict[str, Any]:
    return {
        "org_id": event.org_id,
        "event_id": event.id,
        "kind": kind.value,
        "channel": channel.value,
        "key": key,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
    }


def _webhook_rows(
    svc: Services,
    event: Event,
    kind: Kind,
    about: About,
    message: Message,
    hooks: list[Subscription],
) -> list[dict[str, Any]]:
    if not hooks:
        return []
    body = orjson.dumps(
        {
            "type": kind.value,
            "timestamp": _iso(event.created_at),
            "data": {
                "event_id": event.id,
                "org_id": event.org_id,
                "subject": {
                    "kind": about.subject_kind,
                    "id": about.subject_id,
                    "name": about.name,
                    "url": message.url,
                },
                "job_id": about.job_id,
                "from_status": event.from_status,
                "to_status": event.to_status,
                "actor": event.actor,
                "reason": event.reason,
                "title": message.title,
                "message": message.text,
                "api_url": svc.url(f"/api/v1/{about.subject_kind}s/{about.subject_id}"),
            },
        }
    ).decode()
    return [
        {
            **_base(
                event, kind, Channel.WEBHOOK, f"{event.id}.webhook.s{sub.id}", event.created_at
            ),
            "user_id": None,
            "subscription_id": sub.id,
            "payload": {"body": body},
        }
        for sub in hooks
    ]


# -- the relay


@dataclass
class Channels:
    """The senders a relay owns for its lifetime."""

    email: mail.EmailSender | None
    webhooks: WebhookSender

    @classmethod
    def from_settings(cls, settings: Settings) -> Channels:
        sender = None
        if email_enabled(settings):
            sender = mail.EmailSender(
                mail.SmtpConfig(
                    host=settings.smtp_host,
                    port=settings.smtp_port,
                    tls=settings.smtp_tls,
                    user=settings.smtp_user,
                    password=settings.smtp_password,
                    sender=settings.smtp_from,
                    allow_plaintext_auth=settings.smtp_allow_plaintext_auth,
                )
            )
        return cls(sender, WebhookSender(settings.webhook_allow_private))

    async def close(self) -> None:
        await self.webhooks.close()


async def _any_due(svc: Services, channels: list[str]) -> bool:
    # A read first: an idle relay never queues for the (SQLite) writer.
    async with svc.db.read() as tx:
        return await tx.notify.outbox.any_due(channels, svc.clock.now())


async def deliver_in_app(svc: Services, limit: int = 1000) -> int:
    """Move due in-app rows into inboxes, exactly once (one transaction); returns how many."""
    if not await _any_due(svc, [Channel.IN_APP.value]):
        return 0
    async with svc.db.begin() as tx:
        now = svc.clock.now()
        due = await tx.notify.outbox.take([Channel.IN_APP.value], now, limit)
        if not due:
            return 0
        ids = [d for d, _ in due]
        await tx.notify.inbox.add_from_outbox(ids, now)
        # Landed: the inbox row (same key) is the record now; deleting is cheaper than
        # rewriting a thousand rows and their index entries.
        await tx.notify.outbox.delete(ids)
        users = {u for _, u in due if u is not None}

        def wake_streams() -> None:
            for user_id in users:
                svc.hub.publish(inbox_topic(user_id), "new")

        tx.after_commit(wake_streams)
    return len(due)


async def deliver_remote(svc: Services, channels: Channels, limit: int = 200) -> int:
    """Claim due email and webhook rows, send them, record the outcomes; returns how many."""
    pol = policy(svc.settings)
    wanted = [Channel.WEBHOOK.value] + ([Channel.EMAIL.value] if channels.email else [])
    if not await _any_due(svc, wanted):
        return 0
    async with svc.db.begin() as tx:
        now = svc.clock.now()
        batch = await tx.notify.outbox.claim(
            wanted, now, now + dt.timedelta(seconds=pol.lease), limit
        )
        subs: dict[int, Subscription] = {}
        for sid in {d.subscription_id for d in batch if d.subscription_id is not None}:
            sub = await tx.notify.webhooks.get_any(sid)
            if sub is not None:
                subs[sid] = sub
        # Addresses are read at sending time: an email goes to where the person is now.
        contacts = await tx.notify.contacts(
            [d.user_id for d in batch if d.channel == Channel.EMAIL and d.user_id is not None]
        )
    if not batch:
        return 0
    outcomes = await _send(svc, channels, batch, subs, contacts)
    await _record(svc, pol, batch, outcomes, subs)
    return len(batch)


async def _send(
    svc: Services,
    channels: Channels,
    batch: list[Delivery],
    subs: dict[int, Subscription],
    contacts: dict[int, tuple[str, str]],
) -> dict[int, Outcome]:
    outcomes: dict[int, Outcome] = {}
    emails = [d for d in batch if d.channel == Channel.EMAIL]
    if emails and channels.email is not None:
        sender = svc.settings.smtp_from
        domain = sender.rpartition("@")[2] or "jobyard"
        ready: list[tuple[Delivery, EmailMessage]] = []
        for d in emails:
            to, name = contacts.get(d.user_id or 0, ("", ""))
            if not to:
                outcomes[d.id] = Outcome("the recipient no longer exists", permanent=True)
                continue
            try:
                ready.append((d, _email(d, to, name, sender, domain)))
            except (KeyError, ValueError) as exc:
                outcomes[d.id] = Outcome(f"cannot build the email: {exc}", permanent=True)
        sent = await channels.email.send_many([m for _, m in ready])
        for (d, _), outcome in zip(ready, sent, strict=True):
            outcomes[d.id] = outcome

    gate = asyncio.Semaphore(16)

    async def post(d: Delivery) -> None:
        sub = subs.get(d.subscription_id or 0)
        if sub is None or not sub.enabled:
            outcomes[d.id] = Outcome("the webhook subscription is disabled", permanent=True)
            return
        async with gate:
            body = str(d.payload["body"]).encode()
            outcomes[d.id] = await channels.webhooks.send(sub.url, sub.secret, d.key, body)

    await asyncio.gather(*(post(d) for d in batch if d.channel == Channel.WEBHOOK))
    return outcomes


def _email(d: Delivery, to: str, name: str, sender: str, domain: str) -> EmailMessage:
    return mail.build(
        sender=sender,
        to=to,
        title=str(d.payload["title"]),
        text=str(d.payload["message"]),
        url=str(d.payload["url"]),
        msg_id=mail.message_id(d.key, domain),
        name=name,
    )


async def _record(
    svc: Services,
    pol: RetryPolicy,
    batch: list[Delivery],
    outcomes: dict[int, Outcome],
    subs: dict[int, Subscription],
) -> None:
    async with svc.db.begin() as tx:
        now = svc.clock.now()
        await tx.notify.outbox.mark_sent(
            [d.id for d in batch if outcomes[d.id].ok], now, attempted=True
        )
        for d in batch:
            outcome = outcomes[d.id]
            if outcome.ok:
                continue
            error = outcome.error or "failed"
            if outcome.permanent or pol.gives_up(d.attempts):
                await tx.notify.outbox.fail(d.id, error, now)
                log.warning("giving up on %s delivery %s: %s", d.channel, d.key, error)
            else:
                # A little jitter spreads the retries of one outage over time.
                delay = pol.delay(d.attempts) * (0.8 + 0.4 * random.random())
                await tx.notify.outbox.retry_later(
                    d.id, now + dt.timedelta(seconds=delay), error, now
                )
        await _webhook_health(svc, tx, pol, batch, outcomes, subs, now)


async def _webhook_health(
    svc: Services,
    tx: Tx,
    pol: RetryPolicy,
    batch: list[Delivery],
    outcomes: dict[int, Outcome],
    subs: dict[int, Subscription],
    now: dt.datetime,
) -> None:
    """Count failures in a row per subscription; disable one that keeps failing."""
    for d in batch:
        sub = subs.get(d.subscription_id or 0)
        if d.channel != Channel.WEBHOOK or sub is None or not sub.enabled:
            continue
        outcome = outcomes[d.id]
        if outcome.ok:
            await tx.notify.webhooks.succeeded(sub.id, now)
            continue
        failures = await tx.notify.webhooks.failed(sub.id, now)
        if failures >= pol.disable_after:
            reason = (
                f"disabled after {failures} failed deliveries in a row; last error: {outcome.error}"
            )
            await tx.notify.webhooks.update(
                sub.id, {"enabled": False, "disabled_reason": reason, "disabled_at": now}
            )
            await tx.notify.outbox.fail_pending_of(sub.id, reason, now)
            subs[sub.id] = dataclasses.replace(sub, enabled=False)
            tx.after_commit(lambda org=sub.org_id: forget_subscriptions(svc, org))
            log.warning("webhook subscription %s %s", sub.id, reason)


async def relay_once(svc: Services, channels: Channels) -> int:
    """One pass of the relay: every due in-app row (cheap, local), then one batch of
    email and webhooks."""
    done = 0
    while n := await deliver_in_app(svc):
        done += n
    return done + await deliver_remote(svc, channels)


async def prune_sent(svc: Services, keep_days: float = 7.0) -> int:
    """Forget sent deliveries older than ``keep_days``."""
    async with svc.db.begin() as tx:
        before = svc.clock.now() - dt.timedelta(days=keep_days)
        return await tx.notify.outbox.prune(before)
