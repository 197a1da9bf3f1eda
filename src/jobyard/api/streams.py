"""Live events (server-sent events), per-node output and output files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import FileResponse, Response

from jobyard.api import render
from jobyard.api.auth import agent_principal, principal, services
from jobyard.api.ids import IdPath
from jobyard.api.jobs import _job_id
from jobyard.api.responses import JSON, content_disposition, iso
from jobyard.api.sse import event_stream, frame, job_finished
from jobyard.domain.errors import Invalid
from jobyard.domain.outputs import Printed
from jobyard.domain.records import Event, Principal, StoredFile
from jobyard.service import feeds, outputs
from jobyard.service import jobs as uc
from jobyard.service.context import Services

router = APIRouter(prefix="/api/v1", tags=["streams"])
Who = Annotated[Principal, Depends(principal)]
# An agent downloads its jobs' input files here (agent/runner.py fetch_input).
AgentOrWho = Annotated[Principal, Depends(agent_principal)]
Svc = Annotated[Services, Depends(services)]


def _one(event: Event) -> list[tuple[str | None, Any]]:
    return [(event.type, render.event(event))]


@router.get("/events", summary="The organization's events as server-sent events")
async def org_events(request: Request, who: Who, svc: Svc) -> Response:
    feeds.check_reader(who)  # 403 before the stream starts
    return event_stream(
        request, f"org:{who.org_id}", lambda after: feeds.org_events(svc, who, after), _one
    )


@router.get("/jobs/{job_id}/events", summary="A job's events as server-sent events")
async def job_events(
    request: Request,
    job_id: str,
    who: Who,
    svc: Svc,
    output: Annotated[
        bool,
        Query(
            description="Also stream the nodes' output: first what is stored so far (one "
            "`output` frame per node and stream, offset 0), then each chunk as it arrives "
            "(`output` frames {node, stream, data}).",
        ),
    ] = False,
) -> Response:
    jid = _job_id(job_id)
    await uc.get_job(svc, who, jid)  # 404 before the stream starts
    # Where each stream's text sent so far ends: a chunk printed before the stored text
    # was read may also be waiting in the live queue, and goes out only past that byte.
    sent: dict[tuple[str, str], int] = {}

    async def stored() -> list[bytes]:
        view = await uc.get_job(svc, who, jid)
        kept = await outputs.kept_streams(svc, view.runs)
        sent.update({key: end for key, (_, end) in kept.items()})
        return [
            frame(None, "output", {"node": node, "stream": stream, "data": text, "offset": 0})
            for (node, stream), (text, _) in kept.items()
        ]

    def printed(message: Any) -> list[tuple[str | None, Any]]:
        if not isinstance(message, Printed):
            return []
        key = (message.node, message.stream)
        data = message.past(sent.get(key, 0))  # part of it may have gone with the stored text
        if data is None:
            return []
        sent[key] = message.end
        return [("output", {"node": key[0], "stream": key[1], "data": data, "offset": None})]

    return event_stream(
        request,
        f"job:{jid}",
        lambda after: uc.job_events(svc, who, jid, after),
        _one,
        until=job_finished,
        also=(outputs.output_topic(jid),) if output else (),
        other=printed if output else None,
        opening=stored if output else None,
    )


@router.get("/jobs/{job_id}/output/{node}/{stream}", summary="A node's stdout or stderr")
async def node_output(job_id: str, node: str, stream: str, who: Who, svc: Svc) -> Response:
    if stream not in ("stdout", "stderr"):
        raise Invalid("stream is stdout or stderr", "stream")
    text = await outputs.read_stream(svc, who, _job_id(job_id), node, stream)
    return Response(text, media_type="text/plain; charset=utf-8")


def file_json(f: StoredFile, base: str) -> dict[str, Any]:
    return {
        "id": f.id,
        "job_id": f.job_id,
        "node": f.node_name,
        "name": f.name,
        "size": f.size,
        "md5": f.md5,
        "sha256": f.sha256,
        "created_at": iso(f.created_at),
        "download_url": f"{base}/api/v1/files/{f.id}/contents",
    }


@router.get("/jobs/{job_id}/files", summary="Output files of a job")
async def list_files(job_id: str, who: Who, svc: Svc) -> Response:
    files = await outputs.list_files(svc, who, _job_id(job_id))
    return JSON([file_json(f, svc.settings.base_url) for f in files])


@router.get("/files/{file_id}/contents", summary="Download an output file")
async def file_contents(file_id: IdPath, who: AgentOrWho, svc: Svc) -> Response:
    stored, path = await outputs.locate_file(svc, who, file_id)
    return download(stored, path)


def download(stored: StoredFile, path: Path) -> Response:
    """A stored file's bytes, streamed from disk (input files may be large)."""
    return FileResponse(
        path,
        media_type="application/octet-stream",
        headers={"Content-Disposition": content_disposition(stored.name)},
    )
