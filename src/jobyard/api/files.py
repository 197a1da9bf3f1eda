"""Input files: POST /api/v1/files (streamed to disk), listed and described by id.

The body is either the raw bytes (``?name=`` names the file) or ``multipart/form-data``
with one file part (any field name; its filename names the file). The bytes go to disk
as they arrive, with their sha256, up to ``upload_cap``; a job names them in
``input_files`` and its agents download them into the run's directory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.datastructures import UploadFile
from starlette.responses import Response

from jobyard.api import render
from jobyard.api.auth import principal, services
from jobyard.api.ids import IdPath
from jobyard.api.responses import JSON, iso
from jobyard.domain.errors import Invalid
from jobyard.domain.records import Page, Principal, StoredFile
from jobyard.service import inputs
from jobyard.service.context import Services

router = APIRouter(prefix="/api/v1", tags=["files"])
Who = Annotated[Principal, Depends(principal)]
Svc = Annotated[Services, Depends(services)]
CHUNK = 1 << 20
# The paths that take uploads: their bodies may be up to upload_cap (+ framing).
UPLOAD_PATHS = (
    "/api/v1/files",
    "/compat/rescale/api/files/contents",
    "/compat/rescale/api/v2/files/contents",
)
# Multipart framing around the file's bytes: boundaries, part headers, small fields.
UPLOAD_OVERHEAD = 1 << 20


def input_json(f: StoredFile, base: str) -> dict[str, Any]:
    return {
        "id": f.id,
        "name": f.name,
        "size": f.size,
        "sha256": f.sha256,
        "md5": f.md5,
        "created_at": iso(f.created_at),
        "download_url": f"{base}/api/v1/files/{f.id}/contents",
    }


async def _chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(CHUNK):
        yield chunk


async def receive_upload(
    request: Request, svc: Services, who: Principal, field: str | None = None
) -> StoredFile:
    """Store the one file a request carries: multipart (the ``field`` part, else the first
    file part) or a raw body named by ``?name=``."""
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        try:
            form = await request.form(max_files=4, max_fields=20)
        except Exception as exc:  # a malformed multipart body
            raise Invalid(f"the multipart body could not be read: {exc}", "file") from None
        try:
            parts = [v for k, v in form.multi_items() if isinstance(v, UploadFile)]
            chosen = form.get(field) if field else None
            upload = chosen if isinstance(chosen, UploadFile) else (parts[0] if parts else None)
            if upload is None:
                raise Invalid("the multipart body has no file part", field or "file")
            return await inputs.upload(svc, who, upload.filename, _chunks(upload))
        finally:
            await form.close()
    return await inputs.upload(svc, who, request.query_params.get("name"), request.stream())


@router.post("/files", status_code=201, summary="Upload an input file (raw body or multipart)")
async def upload_file(request: Request, who: Who, svc: Svc) -> Response:
    stored = await receive_upload(request, svc, who)
    return JSON(
        input_json(stored, svc.settings.base_url),
        status_code=201,
        headers={"Location": f"/api/v1/files/{stored.id}"},
    )


@router.get("/files", summary="Uploaded input files, newest first")
async def list_files(
    request: Request, who: Who, svc: Svc, page: int = 1, page_size: int = 20
) -> Response:
    offset, limit = render.page_params(page, page_size, svc.settings.max_page_size)
    items, total = await inputs.list_inputs(svc, who, offset, limit)
    base = svc.settings.base_url
    return JSON(
        render.paginated(request, Page(items, total), page, limit, lambda f: input_json(f, base))
    )


@router.get("/files/{file_id}", summary="An uploaded input file's description")
async def get_file(file_id: IdPath, who: Who, svc: Svc) -> Response:
    return JSON(input_json(await inputs.get(svc, who, file_id), svc.settings.base_url))
