"""Native API: watchers of jobs and clusters, and shares of jobs.

/api/v1/jobs/{id}/watchers            GET list, POST watch, DELETE stop watching
/api/v1/jobs/{id}/watchers/{user}     DELETE (admins: another member)
/api/v1/clusters/{id}/watchers ...    the same for clusters
/api/v1/stack-runs/{id}/watchers       GET list, POST watch, DELETE stop watching
/api/v1/jobs/{id}/shares              GET list, POST share by email
/api/v1/jobs/{id}/shares/{email}      DELETE unshare
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from starlette.responses import Response

from jobyard.api import render
from jobyard.api.auth import principal, services
from jobyard.api.ids import MAX_ID, IdPath
from jobyard.api.responses import JSON, iso
from jobyard.domain.notifications import Share, Watcher
from jobyard.domain.records import Page, Principal
from jobyard.service import sharing, watchers
from jobyard.service.context import Services
from jobyard.wire.notifications import ShareIn, WatchIn

router = APIRouter(prefix="/api/v1", tags=["watchers and shares"])
Who = Annotated[Principal, Depends(principal)]
Svc = Annotated[Services, Depends(services)]


def watcher_json(w: Watcher) -> dict[str, Any]:
    return {
        "id": w.user_id,
        "email": w.email,
        "display_name": w.display_name,
        "created_at": iso(w.created_at),
    }


def share_json(s: Share) -> dict[str, Any]:
    return {
        "job_id": s.job_id,
        "user_id": s.user_id,
        "email": s.email,
        "display_name": s.display_name,
        "message": s.message,
        "shared_by": s.shared_by,
        "created_at": iso(s.created_at),
    }


async def _list(
    request: Request,
    svc: Services,
    who: Principal,
    kind: str,
    subject_id: int,
    page: int,
    page_size: int,
) -> Response:
    offset, limit = render.page_params(page, page_size, svc.settings.max_page_size)
    found = await watchers.list_watchers(svc, who, kind, subject_id)
    window = Page(found[offset : offset + limit], len(found))
    return JSON(render.paginated(request, window, page, limit, watcher_json))


async def _watch(
    svc: Services, who: Principal, kind: str, subject_id: int, body: WatchIn | None
) -> Response:
    done = await watchers.watch(svc, who, kind, subject_id, body.user_id if body else None)
    return JSON(
        {
            "kind": kind,
            "subject_id": subject_id,
            "user_id": done.user_id,
            "created_at": iso(done.created_at),
            f"{kind}_url": svc.url(f"/api/v1/{kind.replace('_', '-')}s/{subject_id}"),
        },
        status_code=201 if done.created else 200,
    )


def _watcher_routes(
    kind: str, segment: str, param: str, watch: str, remove: str | None = None
) -> None:
    """For one kind of subject: GET (who watches), POST (watch, with the summary ``watch``)
    and DELETE (stop watching) ``/{segment}/{param}/watchers``; and where ``remove`` is
    given, DELETE ``.../watchers/{user_id}`` (an admin removes a member)."""
    path = f"/{segment}/{{{param}}}/watchers"
    noun = kind.replace("_", " ")

    def subject() -> Any:
        # Named after the path's parameter, checked like every IdPath.
        return Path(alias=param, ge=1, le=MAX_ID, description="an object id")

    async def list_watchers(
        request: Request,
        who: Who,
        svc: Svc,
        subject_id: int = subject(),
        page: int = 1,
        page_size: int = 100,
    ) -> Response:
        return await _list(request, svc, who, kind, subject_id, page, page_size)

    async def start_watching(
        who: Who, svc: Svc, subject_id: int = subject(), body: WatchIn | None = None
    ) -> Response:
        return await _watch(svc, who, kind, subject_id, body)

    async def stop_watching(who: Who, svc: Svc, subject_id: int = subject()) -> Response:
        await watchers.unwatch(svc, who, kind, subject_id)
        return Response(status_code=204)

    async def remove_watcher(
        *, subject_id: int = subject(), user_id: IdPath, who: Who, svc: Svc
    ) -> Response:
        await watchers.unwatch(svc, who, kind, subject_id, user_id)
        return Response(status_code=204)

    router.add_api_route(
        path,
        list_watchers,
        methods=["GET"],
        name=f"{kind}_watchers",
        summary=f"Who watches a {noun}",
    )
    router.add_api_route(
        path, start_watching, methods=["POST"], name=f"watch_{kind}", summary=watch
    )
    router.add_api_route(
        path,
        stop_watching,
        methods=["DELETE"],
        status_code=204,
        name=f"unwatch_{kind}",
        summary=f"Stop watching a {noun}",
    )
    if remove is not None:
        router.add_api_route(
            path + "/{user_id}",
            remove_watcher,
            methods=["DELETE"],
            status_code=204,
            name=f"remove_{kind}_watcher",
            summary=remove,
        )


_watcher_routes(
    "job",
    "jobs",
    "job_id",
    watch="Watch a job (201; 200 when already watching); admins may name a member",
    remove="Remove a watcher (admin)",
)
_watcher_routes(
    "cluster",
    "clusters",
    "cluster_id",
    watch="Watch a cluster (201; 200 when already watching); admins may name a member",
    remove="Remove a cluster watcher (admin)",
)


@router.get("/jobs/{job_id}/shares", summary="Who a job is shared with")
async def job_shares(job_id: IdPath, who: Who, svc: Svc) -> Response:
    return JSON([share_json(s) for s in await sharing.list_shares(svc, who, job_id)])


@router.post(
    "/jobs/{job_id}/shares",
    status_code=201,
    summary="Share a job with a user by email: they may read it and are told",
)
async def share_job(job_id: IdPath, body: ShareIn, who: Who, svc: Svc) -> Response:
    share = await sharing.share_job(svc, who, job_id, body.email, body.message)
    return JSON(share_json(share), status_code=201)


@router.delete("/jobs/{job_id}/shares/{email}", status_code=204, summary="Take a share back")
async def unshare_job(job_id: IdPath, email: str, who: Who, svc: Svc) -> Response:
    await sharing.unshare_job(svc, who, job_id, email)
    return Response(status_code=204)


_watcher_routes(
    "stack_run",
    "stack-runs",
    "run_id",
    watch="Watch a stack run: be told when it ends (201; 200 when already watching)",
)
