"""The outcome of a finished job, as the API and the dashboard show it (domain.outcomes)."""

from __future__ import annotations

import re

import httpx

from jobyard.domain.jobs import JobStatus, NodeRunStatus
from jobyard.service.context import Services
from tests.conftest import Account
from tests.dialects.conftest import drive
from tests.web.dashboard import sign_in

R = NodeRunStatus


async def _finished(
    client: httpx.AsyncClient, svc: Services, admin: Account, results: dict[str, NodeRunStatus]
) -> int:
    made = await client.post(
        "/api/v1/jobs",
        json={"command": "false", "nodes": list(results)},
        headers=admin.headers,
    )
    assert made.status_code == 201, made.text
    job_id = int(made.json()["id"])
    await drive(
        svc,
        job_id,
        job=[JobStatus.VOTING],
        runs={node: [R.READY] for node in results},
    )
    await drive(
        svc,
        job_id,
        job=[JobStatus.RUNNING],
        runs={node: [r] for node, r in results.items()},
    )
    await drive(svc, job_id, job=[JobStatus.COMPLETE])
    return job_id


async def test_every_node_failed_reads_red(
    client: httpx.AsyncClient, svc: Services, admin: Account
) -> None:
    failed = await _finished(client, svc, admin, {"n1": R.FAILED, "n2": R.FAILED, "n3": R.FAILED})
    fine = await _finished(client, svc, admin, {"n4": R.SUCCEEDED})
    api = (await client.get(f"/api/v1/jobs/{failed}", headers=admin.headers)).json()
    assert (api["status"], api["outcome"]) == ("complete", "failed")
    assert api["outcome_label"] == "complete · 3 of 3 failed"
    listed = (await client.get("/api/v1/jobs", headers=admin.headers)).json()["results"]
    assert {j["id"]: j["outcome"] for j in listed} == {failed: "failed", fine: "succeeded"}

    await sign_in(client, admin.email)
    listing = (await client.get("/jobs")).text
    row = re.search(rf'<tr data-job-id="{failed}".*?</tr>', listing, re.S)
    assert row is not None
    assert 'class="badge tone-bad" data-status="complete" data-outcome="failed"' in row.group(0)
    assert "complete · 3 of 3 failed" in row.group(0)
    good = re.search(rf'<tr data-job-id="{fine}".*?</tr>', listing, re.S)
    assert good is not None and "tone-ok" in good.group(0)
    page = (await client.get(f"/jobs/{failed}")).text
    head = re.search(r'<div class="head-status".*?</div>', page, re.S)
    assert head is not None
    assert "tone-bad" in head.group(0) and "complete · 3 of 3 failed" in head.group(0)
