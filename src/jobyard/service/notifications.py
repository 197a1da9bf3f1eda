"""The in-app inbox, notification settings, and the deliveries a person or admin can inspect.

Importing this module registers the outbox observer (``service/outbox.py``), so any
process that serves the API also queues notifications.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jobyard.domain.accounts import Role, require
from jobyard.domain.errors import Conflict, Invalid, NotFound
from jobyard.domain.notifications import (
    PERSONAL_CHANNELS,
    PERSONAL_KINDS,
    Delivery,
    DeliveryStatus,
    Notification,
    Prefs,
    check_statuses,
)
from jobyard.domain.records import Page, Principal
from jobyard.service import outbox
from jobyard.service.context import Services

ORDERS = ("unread", "time")


def _reader(who: Principal) -> None:
    require(who.role, Role.VIEWER, "reading notifications")


async def list_notifications(
    svc: Services,
    who: Principal,
    *,
    order: str = "unread",
    unread_only: bool = False,
    offset: int = 0,
    limit: int = 20,
) -> Page[Notification]:
    """A page of the caller's inbox: unread first then newest (``unread``), or newest (``time``)."""
    _reader(who)
    if order not in ORDERS:
        raise Invalid(f"order is one of {', '.join(ORDERS)}", "order")
    async with svc.db.read() as tx:
        return await tx.notify.inbox.page(
            who.org_id,
            who.user_id,
            unread_first=order == "unread",
            unread_only=unread_only,
            offset=offset,
            limit=limit,
        )


async def unread_count(svc: Services, who: Principal) -> int:
    _reader(who)
    async with svc.db.read() as tx:
        return await tx.notify.inbox.unread(who.org_id, who.user_id)


async def get_notification(svc: Services, who: Principal, notification_id: int) -> Notification:
    _reader(who)
    async with svc.db.read() as tx:
        found = await tx.notify.inbox.get(who.org_id, who.user_id, notification_id)
    if found is None:
        raise NotFound(f"no notification {notification_id}")
    return found


async def mark_read(svc: Services, who: Principal, notification_id: int) -> Notification:
    """Mark one notification read (reading it again keeps the first time)."""
    _reader(who)
    async with svc.db.begin() as tx:
        await tx.notify.inbox.mark_read(who.org_id, who.user_id, [notification_id], svc.clock.now())
        found = await tx.notify.inbox.get(who.org_id, who.user_id, notification_id)
        if found is None:
            raise NotFound(f"no notification {notification_id}")
        tx.after_commit(lambda: svc.hub.publish(outbox.inbox_topic(who.user_id), "read"))
    return found


async def mark_all_read(svc: Services, who: Principal) -> int:
    """Mark every unread notification of the caller read; returns how many."""
    _reader(who)
    async with svc.db.begin() as tx:
        count = await tx.notify.inbox.mark_read(who.org_id, who.user_id, None, svc.clock.now())
        tx.after_commit(lambda: svc.hub.publish(outbox.inbox_topic(who.user_id), "read"))
    return count


async def notifications_after(
    svc: Services, who: Principal, after_id: int, limit: int = 200
) -> list[Notification]:
    """The caller's notifications newer than an id, oldest first (live stream replay)."""
    _reader(who)
    async with svc.db.read() as tx:
        return await tx.notify.inbox.after(who.org_id, who.user_id, after_id, limit)


async def last_notification_id(svc: Services, who: Principal) -> int:
    _reader(who)
    async with svc.db.read() as tx:
        return await tx.notify.inbox.last_id(who.org_id, who.user_id)


def inbox_topic(who: Principal) -> str:
    """The hub topic that wakes the caller's live stream."""
    return outbox.inbox_topic(who.user_id)


# -- settings


async def get_settings(svc: Services, who: Principal) -> list[Prefs]:
    """The caller's channels for every kind of notification (defaults where unset)."""
    _reader(who)
    async with svc.db.read() as tx:
        saved = await tx.notify.prefs.of_user(who.user_id)
    return [saved.get(k.value, Prefs(k.value)) for k in PERSONAL_KINDS]


async def put_settings(
    svc: Services, who: Principal, changes: Mapping[str, Mapping[str, Any]]
) -> list[Prefs]:
    """Change channels per kind: ``{"job.failed": {"email": true, "in_app": false}, ...}``.

    Kinds and channels left out keep their current setting.
    """
    _reader(who)
    kinds = [k.value for k in PERSONAL_KINDS]
    channels = [c.value for c in PERSONAL_CHANNELS]
    for kind, chosen in changes.items():
        if kind not in kinds:
            raise Invalid(f"unknown notification kind {kind!r}: use {', '.join(kinds)}", kind)
        for channel, on in chosen.items():
            if channel not in channels:
                raise Invalid(
                    f"unknown channel {channel!r} for {kind}: use {', '.join(channels)}", kind
                )
            if not isinstance(on, bool):
                raise Invalid(f"{kind}.{channel} is true or false", kind)
    async with svc.db.begin() as tx:
        saved = await tx.notify.prefs.of_user(who.user_id)
        updated = []
        for kind, chosen in changes.items():
            current = saved.get(kind, Prefs(kind))
            updated.append(
                Prefs(
                    kind,
                    in_app=chosen.get("in_app", current.in_app),
                    email=chosen.get("email", current.email),
                )
            )
        await tx.notify.prefs.put(who.user_id, updated, svc.clock.now())
    return await get_settings(svc, who)


# -- deliveries


async def list_deliveries(
    svc: Services,
    who: Principal,
    *,
    statuses: list[str] | None = None,
    channel: str | None = None,
    everyone: bool = False,
    offset: int = 0,
    limit: int = 50,
) -> Page[Delivery]:
    """Deliveries of the caller's notifications, or (admins, ``everyone``) of the organization."""
    _reader(who)
    if everyone:
        require(who.role, Role.ADMIN, "reading everyone's deliveries")
    statuses = check_statuses(statuses)
    if channel is not None and channel not in ("in_app", "email", "webhook"):
        raise Invalid("channel is one of in_app, email, webhook", "channel")
    async with svc.db.read() as tx:
        return await tx.notify.outbox.page(
            who.org_id,
            user_id=None if everyone else who.user_id,
            statuses=statuses or (),
            channel=channel,
            offset=offset,
            limit=limit,
        )


async def retry_delivery(svc: Services, who: Principal, delivery_id: int) -> Delivery:
    """Send a failed delivery again (its recipient, or an admin)."""
    _reader(who)
    async with svc.db.begin() as tx:
        found = await tx.notify.outbox.get(who.org_id, delivery_id)
        if found is None or (found.user_id != who.user_id and who.role is not Role.ADMIN):
            raise NotFound(f"no delivery {delivery_id}")
        if found.status != DeliveryStatus.FAILED:
            raise Conflict(
                f"delivery {delivery_id} is {found.status}; only failed ones are sent again"
            )
        again = await tx.notify.outbox.requeue(who.org_id, delivery_id, svc.clock.now())
        assert again is not None
        tx.after_commit(lambda: svc.hub.publish(outbox.OUTBOX, 1))
    return again
