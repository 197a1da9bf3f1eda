"""Native API: the caller's in-app inbox, its live stream, channel settings and deliveries.

GET  /api/v1/notifications                   inbox (order=unread|time, unread=true)
GET  /api/v1/notifications/unread-count
GET  /api/v1/notifications/stream            server-sent events: notification, unread
POST /api/v1/notifications/read-all
GET  /api/v1/notifications/{id}
POST /api/v1/notifications/{id}/read
GET  /api/v1/notifications/settings          PUT to change
GET  /api/v1/notifications/deliveries        yours; admins: all=true
POST /api/v1/notifications/deliveries/{id}/retry
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response, StreamingResponse

from jobyard.api import render
from jobyard.api.auth import principal, services
from jobyard.api.ids import IdPath
from jobyard.api.responses import JSON, iso
from jobyard.api.sse import KEEPALIVE, frame, last_event_id
from jobyard.domain.notifications import PERSONAL_CHANNELS, Delivery, Notification, Prefs
from jobyard.domain.records import Principal
from jobyard.service import notifications as uc
from jobyard.service import revocations
from jobyard.service.context import Services
from jobyard.service.hub import SHUTDOWN
from jobyard.wire.notifications import SettingsIn

router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])
REPLAY = 200
Who = Annotated[Principal, Depends(principal)]
Svc = Annotated[Services, Depends(services)]


def notification_json(n: Notification) -> dict[str, Any]:
    return {
        "id": n.id,
        "kind": n.kind,
        "title": n.title,
        "message": n.message,
        "url": n.url,
        "subject": {"kind": n.subject_kind, "id": n.subject_id},
        "job_id": n.job_id,
        "read": n.read_at is not None,
        "last_read_at": iso(n.read_at),
        "created_at": iso(n.created_at),
        "updated_at": iso(n.updated_at),
    }


def delivery_json(d: Delivery) -> dict[str, Any]:
    return {
        "id": d.id,
        "event_id": d.event_id,
        "kind": d.kind,
        "channel": d.channel,
        "user_id": d.user_id,
        "subscription_id": d.subscription_id,
        "key": d.key,
        "status": d.status,
        "attempts": d.attempts,
        "next_attempt_at": iso(d.next_attempt_at) if d.status in ("pending", "sending") else None,
        "last_error": d.last_error,
        "payload": d.payload,
        "created_at": iso(d.created_at),
        "updated_at": iso(d.updated_at),
        "sent_at": iso(d.sent_at),
    }


def settings_json(prefs: list[Prefs]) -> dict[str, Any]:
    return {
        "channels": [c.value for c in PERSONAL_CHANNELS],
        "kinds": {p.kind: {"in_app": p.in_app, "email": p.email} for p in prefs},
    }


@router.get("", summary="Your in-app notifications")
async def inbox(
    request: Request,
    who: Who,
    svc: Svc,
    page: int = 1,
    page_size: int = 20,
    order: Annotated[str, Query(pattern="^(unread|time)$")] = "unread",
    unread: bool = False,
) -> Response:
    offset, limit = render.page_params(page, page_size, svc.settings.max_page_size)
    found = await uc.list_notifications(
        svc, who, order=order, unread_only=unread, offset=offset, limit=limit
    )
    return JSON(render.paginated(request, found, page, limit, notification_json))


@router.get("/unread-count", summary="How many of your notifications are unread")
async def unread_count(who: Who, svc: Svc) -> Response:
    return JSON({"unread": await uc.unread_count(svc, who)})


@router.post("/read-all", summary="Mark all your notifications read")
async def read_all(who: Who, svc: Svc) -> Response:
    return JSON({"marked": await uc.mark_all_read(svc, who)})


@router.get("/settings", summary="Your channels (in_app, email) for each kind of notification")
async def get_settings(who: Who, svc: Svc) -> Response:
    return JSON(settings_json(await uc.get_settings(svc, who)))


@router.put("/settings", summary="Change your channels; kinds and channels left out stay")
async def put_settings(body: SettingsIn, who: Who, svc: Svc) -> Response:
    changes = {k: v.model_dump(exclude_none=True) for k, v in body.kinds.items()}
    return JSON(settings_json(await uc.put_settings(svc, who, changes)))


@router.get("/deliveries", summary="Deliveries of your notifications (admins: all=true)")
async def deliveries(
    request: Request,
    who: Who,
    svc: Svc,
    page: int = 1,
    page_size: int = 50,
    status: Annotated[str | None, Query(description="comma-separated: failed,pending")] = None,
    channel: Annotated[str | None, Query(pattern="^(in_app|email|webhook)$")] = None,
    all: bool = False,
) -> Response:
    offset, limit = render.page_params(page, page_size, svc.settings.max_page_size)
    statuses = [s.strip() for s in status.split(",") if s.strip()] if status else None
    found = await uc.list_deliveries(
        svc, who, statuses=statuses, channel=channel, everyone=all, offset=offset, limit=limit
    )
    return JSON(render.paginated(request, found, page, limit, delivery_json))


@router.post("/deliveries/{delivery_id}/retry", summary="Send a failed delivery again")
async def retry(delivery_id: IdPath, who: Who, svc: Svc) -> Response:
    return JSON(delivery_json(await uc.retry_delivery(svc, who, delivery_id)))


@router.get(
    "/stream",
    summary="Your notifications live, as server-sent events (events: notification, unread)",
    response_class=StreamingResponse,
)
async def stream(request: Request, who: Who, svc: Svc) -> Response:
    """New notifications as ``notification`` events (id = notification id) and the unread
    count as ``unread`` events. With ``Last-Event-ID`` the missed ones are replayed first."""
    resume = last_event_id(request)
    after = resume or await uc.last_notification_id(svc, who)

    async def body() -> AsyncIterator[bytes]:
        nonlocal after
        unread = -1
        async with revocations.watch(svc, who, uc.inbox_topic(who), SHUTDOWN) as queue:
            while True:
                while batch := await uc.notifications_after(svc, who, after, REPLAY):
                    for n in batch:
                        after = n.id
                        yield frame(n.id, "notification", notification_json(n))
                    if len(batch) < REPLAY:
                        break
                count = await uc.unread_count(svc, who)
                if count != unread:
                    unread = count
                    yield frame(None, "unread", {"unread": count})
                if await request.is_disconnected():
                    return
                # Another replica's relay does not wake us: look again at every keep-alive.
                try:
                    woken = [await asyncio.wait_for(queue.get(), KEEPALIVE)]
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                while not queue.empty():
                    woken.append(queue.get_nowait())
                if SHUTDOWN in woken or any(revocations.is_revocation(m) for m in woken):
                    return

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/{notification_id}", summary="One of your notifications")
async def get_one(notification_id: IdPath, who: Who, svc: Svc) -> Response:
    return JSON(notification_json(await uc.get_notification(svc, who, notification_id)))


@router.post("/{notification_id}/read", summary="Mark a notification read")
async def read_one(notification_id: IdPath, who: Who, svc: Svc) -> Response:
    return JSON(notification_json(await uc.mark_read(svc, who, notification_id)))
