"""Input files: uploaded once, named by id on jobs, fetched by the agents that run them.

A job keeps the descriptors of its input files (id, name, size, sha256) in its meta
when it is created, so that the commit message an agent receives carries what to
download and the hash to check, with no lookup at dispatch time.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Sequence
from typing import Any

from jobyard.domain.accounts import Role, require
from jobyard.domain.errors import Invalid, NotFound
from jobyard.domain.filenames import check_name
from jobyard.domain.records import Principal, StoredFile
from jobyard.service.context import Services

MAX_INPUTS = 100
INPUT = "input"


def clean_upload_name(name: str | None) -> str:
    """A plain file name (no directories, no control characters): the agent writes it
    into the run directory."""
    if not isinstance(name, str) or not name.strip():
        raise Invalid("an uploaded file needs a name", "name")
    base = check_name(name).strip()
    if not base or base in (".", "..") or len(base) > 255:
        raise Invalid(f"{name!r} is not a usable file name", "name")
    return base


async def upload(
    svc: Services, who: Principal, name: str | None, chunks: AsyncIterable[bytes]
) -> StoredFile:
    """Stream an upload to disk (size-limited, hashed), then record it."""
    require(who.role, Role.USER, "uploading a file")
    clean = clean_upload_name(name)
    stored = await svc.files.put_stream(chunks, svc.settings.upload_cap, clean)
    try:
        async with svc.db.begin() as tx:
            return await tx.files.insert(
                {
                    "org_id": who.org_id,
                    "job_id": None,
                    "node_name": "",
                    "name": clean,
                    "size": stored.size,
                    "md5": stored.md5,
                    "sha256": stored.sha256,
                    "kind": INPUT,
                    "uploaded_by": who.user_id,
                    "storage_key": stored.key,
                    "created_at": svc.clock.now(),
                }
            )
    except BaseException:
        svc.files.delete(stored.key)
        raise


async def get(svc: Services, who: Principal, file_id: int) -> StoredFile:
    require(who.role, Role.VIEWER, "reading a file")
    async with svc.db.read() as tx:
        stored = await tx.files.get(who.org_id, file_id)
    if stored is None or stored.kind != INPUT:
        raise NotFound(f"no input file {file_id}")
    return stored


async def list_inputs(
    svc: Services, who: Principal, offset: int, limit: int
) -> tuple[list[StoredFile], int]:
    require(who.role, Role.VIEWER, "listing files")
    async with svc.db.read() as tx:
        return await tx.files.inputs(who.org_id, offset, limit)


def descriptor(f: StoredFile) -> dict[str, Any]:
    return {"id": f.id, "name": f.name, "size": f.size, "sha256": f.sha256}


async def resolve(svc: Services, who: Principal, ids: Sequence[Any]) -> list[dict[str, Any]]:
    """The descriptors of input files a job names; an unknown id or a clash is refused."""
    if not isinstance(ids, list | tuple):
        raise Invalid("input_files is a list of file ids", "input_files")
    if len(ids) > MAX_INPUTS:
        raise Invalid(f"a job takes at most {MAX_INPUTS} input files", "input_files")
    out: list[dict[str, Any]] = []
    async with svc.db.read() as tx:
        for raw in ids:
            if not isinstance(raw, int) or isinstance(raw, bool) or raw < 1:
                raise Invalid(f"input file id {raw!r} is not a positive integer", "input_files")
            stored = await tx.files.get(who.org_id, raw)
            if stored is None or stored.kind != INPUT:
                raise Invalid(f"there is no uploaded input file {raw}", "input_files")
            out.append(descriptor(stored))
    names = [d["name"] for d in out]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise Invalid(f"two input files are both named {clash[0]!r}", "input_files")
    return out


def check_outputs(globs: Any) -> list[str]:
    """``outputs``: relative glob patterns naming the files a run keeps."""
    if not isinstance(globs, list) or not all(isinstance(g, str) and g for g in globs):
        raise Invalid("outputs is a list of glob patterns such as '*.csv'", "outputs")
    for g in globs:
        if g.startswith("/") or ".." in g.split("/") or "\x00" in g or len(g) > 1024:
            raise Invalid(f"output pattern {g!r} must be relative to the run directory", "outputs")
    if len(globs) > MAX_INPUTS:
        raise Invalid(f"at most {MAX_INPUTS} output patterns", "outputs")
    return list(globs)


async def job_meta(
    svc: Services, who: Principal, ids: Sequence[Any] | None, globs: Any
) -> dict[str, Any]:
    """What a job's meta keeps of its files: input descriptors and output patterns."""
    meta: dict[str, Any] = {}
    if ids:
        meta["input_files"] = await resolve(svc, who, ids)
    if globs is not None:
        meta["outputs"] = check_outputs(globs)
    return meta
