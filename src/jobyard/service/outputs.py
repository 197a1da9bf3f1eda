"""What a job leaves behind: per-node stdout/stderr and output files."""

from __future__ import annotations

import functools
import hashlib
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from jobyard.domain.accounts import Role, require
from jobyard.domain.errors import Forbidden, Invalid, NotFound, TooLarge
from jobyard.domain.filenames import check_name
from jobyard.domain.outputs import STREAMS, OutputCaps, Printed, Stored, assemble, last_lines
from jobyard.domain.records import NodeRun, Principal, StoredFile
from jobyard.service.context import Services
from jobyard.service.sharing import readable_job
from jobyard.settings import Settings
from jobyard.store import Tx


def _clean_name(name: str) -> str:
    if not isinstance(name, str) or not name:
        raise Invalid("a file needs a name", "name")
    check_name(name, separators=False)  # a relative path: '/' separates its directories
    cleaned = posixpath.normpath("/" + name.replace("\\", "/")).lstrip("/")
    if not cleaned or cleaned.startswith(".."):
        raise Invalid(f"{name!r} is not a relative file name", "name")
    return cleaned[:1024]


async def store_file(
    svc: Services, who: Principal, job_id: int, attempt: int, node: str, name: str, data: bytes
) -> StoredFile | None:
    """Keep a file an agent uploaded for its run; None when the run is stale or unknown."""
    if who.role is not Role.AGENT:
        raise Forbidden("only an agent uploads output files")
    if len(data) > svc.settings.file_cap:
        raise TooLarge(f"{name} is over the {svc.settings.file_cap}-byte file limit")
    name = _clean_name(name)
    key, md5 = svc.files.put(data)

    async def store(tx: Tx) -> StoredFile | None:
        job = await tx.jobs.get(who.org_id, job_id)
        run = await tx.jobs.run(job_id, node) if job else None
        if job is None or run is None or run.attempt != attempt:
            tx.after_commit(lambda: svc.files.delete(key))
            return None
        cap = svc.settings.run_files_cap
        if await tx.files.run_total(job_id, node) + len(data) > cap:
            svc.files.delete(key)
            raise TooLarge(f"{name}: the run's output files would be over {cap} bytes in total")
        return await tx.files.insert(
            {
                "org_id": who.org_id,
                "job_id": job_id,
                "node_name": node,
                "name": name,
                "size": len(data),
                "md5": md5,
                "sha256": hashlib.sha256(data).hexdigest(),
                "storage_key": key,
                "created_at": svc.clock.now(),
            }
        )

    return await svc.db.write(store)


async def _readable_run(tx: Tx, who: Principal, job_id: int, node: str) -> NodeRun:
    require(who.role, Role.VIEWER, "reading output")
    job = await readable_job(tx, who, job_id)  # a share grants reading the output too
    run = await tx.jobs.run(job_id, node) if job else None
    if job is None:
        raise NotFound(f"no job {job_id}")
    if run is None:
        raise NotFound(f"job {job_id} did not run on node {node!r}")
    return run


async def node_output(svc: Services, who: Principal, job_id: int, node: str) -> NodeRun:
    """The run of ``node`` in a job the caller may read."""
    async with svc.db.read() as tx:
        return await _readable_run(tx, who, job_id, node)


def caps_of(settings: Settings, stream: str) -> OutputCaps:
    if stream == "stderr":
        return OutputCaps(settings.stderr_head_cap, settings.stderr_tail_cap)
    return OutputCaps(settings.stdout_head_cap, settings.stdout_tail_cap)


def output_topic(job_id: int) -> str:
    """The hub topic where a job's printed output is published (``Printed``)."""
    return f"output:{job_id}"


async def append_output(svc: Services, tx: Tx, run: NodeRun, stream: str, text: str) -> Stored:
    """Keep what a run printed on ``stream``, within that stream's caps; once committed,
    publish it to the job's followers (``output_topic``)."""
    stored = await tx.outputs.append(run.id, stream, text, caps_of(svc.settings, stream))
    printed = Printed(run.node_name, stream, text, stored.end)
    tx.after_commit(functools.partial(svc.hub.publish, output_topic(run.job_id), printed))
    return stored


async def stream_text(tx: Tx, run_id: int, stream: str) -> str:
    """A stream as kept: its head, a marker for what was dropped, its tail."""
    return assemble(await tx.outputs.chunks(run_id, stream))


async def read_stream(svc: Services, who: Principal, job_id: int, node: str, stream: str) -> str:
    """The whole kept text of one node's ``stream`` (stdout or stderr)."""
    async with svc.db.read() as tx:
        run = await _readable_run(tx, who, job_id, node)
        return await stream_text(tx, run.id, stream)


async def job_streams(svc: Services, runs: Sequence[NodeRun]) -> dict[tuple[str, str], str]:
    """The kept text of every non-empty stream of these runs, by (node, stream)."""
    return {key: text for key, (text, _) in (await kept_streams(svc, runs)).items()}


async def kept_streams(
    svc: Services, runs: Sequence[NodeRun]
) -> dict[tuple[str, str], tuple[str, int]]:
    """The kept text of every non-empty stream of these runs and the byte it ends at (a
    later ``Printed`` ending there or before is in it), by (node, stream)."""
    out: dict[tuple[str, str], tuple[str, int]] = {}
    async with svc.db.read() as tx:
        for run in runs:
            for stream in STREAMS:
                chunks = await tx.outputs.chunks(run.id, stream)
                if chunks:
                    out[(run.node_name, stream)] = (assemble(chunks), chunks[-1].end)
    return out


@dataclass(frozen=True)
class StreamView:
    """What a page shows of a stream: ``text`` up to byte ``end`` of the stream;
    ``reset`` when it replaces what the page had, ``whole`` when nothing before it is
    left out of the view."""

    text: str
    end: int
    reset: bool
    whole: bool


async def view_stream(
    svc: Services, who: Principal, job_id: int, node: str, stream: str, after: int, limit: int
) -> StreamView:
    """The text of a stream past byte ``after`` (what a page showing up to ``after``
    lacks), or, when that is over ``limit`` bytes or no longer kept, its last ``limit``
    bytes to show instead."""
    async with svc.db.read() as tx:
        run = await _readable_run(tx, who, job_id, node)
        return await tail_view(tx, run.id, stream, limit, after)


async def tail_views(
    svc: Services, runs: Sequence[NodeRun], limit: int
) -> dict[tuple[str, str], StreamView]:
    """The last ``limit`` bytes of both streams of each run, by (node, stream)."""
    async with svc.db.read() as tx:
        return {
            (run.node_name, stream): await tail_view(tx, run.id, stream, limit)
            for run in runs
            for stream in STREAMS
        }


async def tail_view(tx: Tx, run_id: int, stream: str, limit: int, after: int = 0) -> StreamView:
    if after > 0:
        new = await tx.outputs.chunks(run_id, stream, after)
        if not new:
            last = await tx.outputs.last(run_id, stream)
            if last is not None and last.end == after:
                return StreamView("", after, False, False)
        elif new[0].offset == after and sum(c.size for c in new) <= limit:
            return StreamView(assemble(new, after, new[0].line), new[-1].end, False, False)
    chunks = await tx.outputs.tail(run_id, stream, limit)
    if not chunks:
        return StreamView("", 0, True, True)
    text = assemble(chunks, chunks[0].offset, chunks[0].line)
    shown = last_lines(text, limit)
    whole = chunks[0].offset == 0 and shown == text
    return StreamView(shown, chunks[-1].end, True, whole)


async def list_files(svc: Services, who: Principal, job_id: int) -> list[StoredFile]:
    require(who.role, Role.VIEWER, "listing output files")
    async with svc.db.read() as tx:
        if await readable_job(tx, who, job_id) is None:
            raise NotFound(f"no job {job_id}")
        return await tx.files.of_job(job_id)


async def read_file(svc: Services, who: Principal, file_id: int) -> tuple[StoredFile, bytes]:
    stored, path = await locate_file(svc, who, file_id)
    try:
        return stored, path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"the contents of file {file_id} are gone") from None


async def locate_file(svc: Services, who: Principal, file_id: int) -> tuple[StoredFile, Path]:
    """A file the caller may read, and where its bytes are (to stream them)."""
    if who.role is not Role.AGENT:
        require(who.role, Role.VIEWER, "reading a file")
    async with svc.db.read() as tx:
        stored = await tx.files.get(who.org_id, file_id)
        if stored is not None and who.role is Role.AGENT and stored.kind != "input":
            raise Forbidden("an agent reads input files only")
        if stored is None and who.role is not Role.AGENT:
            # A file of a job shared with the caller from another organization.
            other = await tx.files.get_any(file_id)
            if (
                other is not None
                and other.job_id is not None
                and await readable_job(tx, who, other.job_id) is not None
            ):
                stored = other
    if stored is None:
        raise NotFound(f"no file {file_id}")
    path = svc.files.path(stored.storage_key)
    if not path.is_file():
        raise NotFound(f"the contents of file {file_id} are gone")
    return stored, path
