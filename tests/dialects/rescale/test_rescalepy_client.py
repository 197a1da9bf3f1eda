"""The public Rescale client (PyPI ``rescalepy``) driven against a real jobyard server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from jobyard.domain.dialects import rescale
from jobyard.domain.jobs import JobStatus, NodeRunStatus
from jobyard.service.context import Services
from tests.conftest import Account
from tests.dialects.conftest import add_file, add_node, drive

client_module = pytest.importorskip("rescalepy.client")
S = NodeRunStatus


async def test_rescalepy_creates_submits_polls_and_downloads(
    live_url: str,
    admin: Account,
    svc: Services,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The client's base URL is a module constant: point it at jobyard, nothing else changes.
    monkeypatch.setattr(client_module, "ENDPOINT", f"{live_url}/compat/rescale/api/v2/")
    await add_node(svc, admin.org, "node1")
    client = await asyncio.to_thread(client_module.Client, api_token=admin.token)

    job_id = await asyncio.to_thread(
        client.create_job,
        name="client job",
        software_code="user_included",
        input_files=[],
        command="echo hello",
        version="0",
        core_type="emerald",
        n_cores=1,
        wall_time=1,
    )
    native = rescale.parse_id(job_id)
    assert native is not None
    details = await asyncio.to_thread(client.get_job_details, job_id)
    assert details["name"] == "client job" and details["jobStatus"]["content"] == "Pending"

    assert await asyncio.to_thread(client.submit_job, job_id) is True
    statuses = await asyncio.to_thread(client.get_job_status, job_id)
    assert statuses[0]["status"] == "Queued"

    await drive(svc, native, job=[JobStatus.VOTING], runs={"node1": [S.READY]})
    await drive(svc, native, job=[JobStatus.RUNNING], runs={"node1": [S.RUNNING, S.SUCCEEDED]})
    await drive(svc, native, job=[JobStatus.COMPLETE])
    await add_file(svc, native, "node1", "result.txt", b"hello\n")

    await asyncio.wait_for(asyncio.to_thread(client.wait_for_job, job_id, 0), 10)
    statuses = await asyncio.to_thread(client.get_job_status, job_id)
    assert statuses[0]["status"] == "Completed"

    files = await asyncio.to_thread(client.list_job_results_files, job_id)
    assert [f["name"] for f in files] == ["result.txt"]
    await asyncio.to_thread(client.download_all_results, job_id, tmp_path)
    assert (tmp_path / "node1" / "result.txt").read_bytes() == b"hello\n"


async def test_rescalepy_refuses_a_bad_token(
    live_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_module, "ENDPOINT", f"{live_url}/compat/rescale/api/v2/")
    with pytest.raises(ValueError, match="API token"):
        await asyncio.to_thread(client_module.Client, api_token="jy_not-a-token")
