"""People acting on a waiting job: approving or rejecting it, giving it input."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from jobyard.domain.errors import JobyardError
from jobyard.service import approvals
from jobyard.web.jobs import job_id_of, render_job
from jobyard.web.page import PageRoute, Poster
from jobyard.web.waiting import arguments_from

router = APIRouter(route_class=PageRoute, include_in_schema=False)


@router.post("/jobs/{job_id}/decide")
async def decide(page: Poster, job_id: str) -> Response:
    jid = job_id_of(job_id)
    approve = page.field("decision") == "approve"
    await approvals.decide(page.svc, page.user, jid, approve, page.field("comment") or None)
    return page.redirect(f"/jobs/{jid}", "approved" if approve else "rejected")


@router.post("/jobs/{job_id}/input")
async def give_input(page: Poster, job_id: str) -> Response:
    jid = job_id_of(job_id)
    values = arguments_from(page.form)
    try:
        await approvals.give_input(page.svc, page.user, jid, values)
    except JobyardError as exc:
        return await render_job(
            page,
            jid,
            status_code=exc.status_code,
            errors={"input": exc.detail, "input_field": getattr(exc, "field", "") or ""},
            values={"input": values},
        )
    return page.redirect(f"/jobs/{jid}", "input_given")
