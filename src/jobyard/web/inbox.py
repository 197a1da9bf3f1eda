"""The notification inbox (unread count in the header), and notification settings."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import APIRouter
from starlette.responses import PlainTextResponse, Response

from jobyard.domain.errors import NotFound
from jobyard.domain.notifications import PERSONAL_CHANNELS
from jobyard.service import notifications as uc
from jobyard.web.page import PageRoute, Poster, Viewer

router = APIRouter(route_class=PageRoute, include_in_schema=False)

PAGE_SIZE = 25
KIND_WORDS = {
    "job.completed": "A job I watch completed",
    "job.failed": "A job I watch failed",
    "job.stopped": "A job I watch was stopped",
    "job.shared": "Someone shared a job with me",
    "cluster.available": "A cluster I watch became available",
    "cluster.terminated": "A cluster I watch was terminated",
    "cluster.error": "A cluster I watch is in error",
    "cluster.job_started": "A job started on a cluster I watch",
    "approval.requested": "A job waits for my approval",
}
CHANNEL_WORDS = {"in_app": "In jobyard", "email": "By email"}


def local_path(url: str | None) -> str:
    """The path of a notification's link on this site (links always open here)."""
    if not url:
        return "/notifications"
    parts = urlsplit(url)
    path = parts.path or "/"
    if not path.startswith("/") or path.startswith("//"):
        return "/notifications"
    return path + (f"?{parts.query}" if parts.query else "")


@router.get("/notifications")
async def inbox(page: Viewer, n: int = 1, unread: str = "") -> Response:
    who = page.user
    n = max(1, n)
    found = await uc.list_notifications(
        page.svc,
        who,
        unread_only=bool(unread),
        offset=(n - 1) * PAGE_SIZE,
        limit=PAGE_SIZE,
    )
    return await page.render(
        "_notifications.html" if page.fragment else "notifications.html",
        items=found.items,
        total=found.total,
        n=n,
        pages=max(1, -(-found.total // PAGE_SIZE)),
        unread_only=bool(unread),
        link=local_path,
    )


@router.get("/notifications/count")
async def unread_count(page: Viewer) -> Response:
    count = await uc.unread_count(page.svc, page.user)
    return PlainTextResponse(str(count), headers={"Cache-Control": "no-store"})


@router.post("/notifications/read")
async def read_all(page: Poster) -> Response:
    await uc.mark_all_read(page.svc, page.user)
    return page.redirect("/notifications", "done")


@router.post("/notifications/{notification_id}/open")
async def open_one(page: Poster, notification_id: str) -> Response:
    """Mark a notification read and go where it points."""
    if not (notification_id.isascii() and notification_id.isdigit()):
        raise NotFound(f"no notification {notification_id!r}")
    found = await uc.mark_read(page.svc, page.user, int(notification_id))
    return page.redirect(local_path(found.url))


@router.get("/settings/notifications")
async def settings(page: Viewer) -> Response:
    return await page.render(
        "notification_settings.html",
        prefs=await uc.get_settings(page.svc, page.user),
        kinds=KIND_WORDS,
        channels=[(c.value, CHANNEL_WORDS.get(c.value, c.value)) for c in PERSONAL_CHANNELS],
    )


@router.post("/settings/notifications")
async def save_settings(page: Poster) -> Response:
    who = page.user
    form = page.form
    assert form is not None
    current = await uc.get_settings(page.svc, who)
    changes = {
        p.kind: {c.value: form.get(f"{p.kind}:{c.value}") == "1" for c in PERSONAL_CHANNELS}
        for p in current
    }
    await uc.put_settings(page.svc, who, changes)
    return page.redirect("/settings/notifications", "saved")
