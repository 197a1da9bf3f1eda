"""What the dialect suites share: moving jobs through states without an agent, files,
and a real HTTP server (uvicorn on loopback, in the test's event loop) for clients
that need one: streaming feeds and the platforms' own client libraries."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Sequence

import pytest
import uvicorn

from jobyard.api.app import create_app
from jobyard.domain.jobs import JobStatus, NodeRunStatus
from jobyard.domain.outputs import OutputCaps
from jobyard.service.context import Services
from jobyard.service.transitions import RunMove, apply, move_job


async def drive(
    svc: Services,
    job_id: int,
    *,
    job: Sequence[JobStatus] = (),
    runs: dict[str, Sequence[NodeRunStatus]] | None = None,
    output: dict[str, tuple[str, str]] | None = None,
) -> None:
    """Move node runs, then the job, through the given states (as the dispatcher would)."""
    async with svc.db.begin() as tx:
        for node, steps in (runs or {}).items():
            for step in steps:
                run = await tx.jobs.run(job_id, node)
                assert run is not None, node
                code = 0 if step is NodeRunStatus.SUCCEEDED else 1
                terminal = step in (NodeRunStatus.SUCCEEDED, NodeRunStatus.FAILED)
                move = RunMove.of(run, step, actor=node, exit_code=code if terminal else None)
                done = await apply(svc, tx, run_changes=[move])
                assert done.runs == [run.id], (node, run.status, step)
        for node, (out, err) in (output or {}).items():
            run = await tx.jobs.run(job_id, node)
            assert run is not None
            await tx.outputs.append(run.id, "stdout", out, OutputCaps(10_000, 10_000))
            await tx.outputs.append(run.id, "stderr", err, OutputCaps(10_000, 10_000))
        for status in job:
            current = await tx.jobs.get_any(job_id)
            assert current is not None
            assert await move_job(svc, tx, current, status, actor=None) is not None


async def add_file(svc: Services, job_id: int, node: str, name: str, data: bytes) -> int:
    key, md5 = svc.files.put(data)
    async with svc.db.begin() as tx:
        job = await tx.jobs.get_any(job_id)
        assert job is not None
        stored = await tx.files.insert(
            {
                "org_id": job.org_id,
                "job_id": job_id,
                "node_name": node,
                "name": name,
                "size": len(data),
                "md5": md5,
                "storage_key": key,
                "created_at": svc.clock.now(),
            }
        )
    return stored.id


async def add_node(
    svc: Services,
    org: str,
    name: str,
    *,
    online: bool = True,
    busy: bool = False,
    cluster: str | None = None,
) -> None:
    async with svc.db.begin() as tx:
        found = await tx.accounts.org_by_name(org)
        assert found is not None
        await tx.nodes.upsert(
            found.id,
            name,
            {"tags": [], "cluster": cluster, "online": online, "connected": online, "busy": busy},
            svc.clock.now(),
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
async def live_url(svc: Services) -> AsyncIterator[str]:
    """The app served by uvicorn on a loopback port, sharing the test's services."""
    app = create_app(services=svc, migrate=False, run_loops=False)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    deadline = asyncio.get_running_loop().time() + 10
    while not server.started:
        assert asyncio.get_running_loop().time() < deadline, "server did not start"
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
