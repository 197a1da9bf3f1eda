"""Who follows a job: watching it (a toggle), and sharing it with a user by email."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from jobyard.domain.errors import Invalid, JobyardError
from jobyard.service import sharing, watchers
from jobyard.web.jobs import job_id_of, render_job
from jobyard.web.page import PageRoute, Poster

router = APIRouter(route_class=PageRoute, include_in_schema=False)


@router.post("/jobs/{job_id}/watch")
async def watch(page: Poster, job_id: str) -> Response:
    jid = job_id_of(job_id)
    if page.field("watch") == "0":
        await watchers.unwatch(page.svc, page.user, "job", jid)
        return page.redirect(f"/jobs/{jid}", "unwatched")
    await watchers.watch(page.svc, page.user, "job", jid)
    return page.redirect(f"/jobs/{jid}", "watching")


@router.post("/jobs/{job_id}/share")
async def share(page: Poster, job_id: str) -> Response:
    jid = job_id_of(job_id)
    values = {"email": page.field("email"), "message": page.field("message")}
    try:
        if not values["email"]:
            raise Invalid("give the email of the person to share the job with", "email")
        await sharing.share_job(page.svc, page.user, jid, values["email"], values["message"])
    except JobyardError as exc:
        return await render_job(
            page,
            jid,
            status_code=exc.status_code,
            errors={"share": exc.detail},
            values={"share": values},
        )
    return page.redirect(f"/jobs/{jid}", "shared")


@router.post("/jobs/{job_id}/unshare")
async def unshare(page: Poster, job_id: str) -> Response:
    jid = job_id_of(job_id)
    await sharing.unshare_job(page.svc, page.user, jid, page.field("email"))
    return page.redirect(f"/jobs/{jid}", "unshared")
