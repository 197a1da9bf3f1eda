"""A job on a cluster that is still being made is accepted and waits for it (Xplenty: the
job is queued until the cluster is available, then runs); it fails with the reason when
the cluster errors or ends first, or when the wait is over. The native API does the same."""

from __future__ import annotations

import httpx

from jobyard.domain.jobs import JobStatus
from jobyard.service import clusters
from jobyard.service.context import Services
from tests.conftest import Account
from tests.dialects.conftest import add_node
from tests.dialects.xplenty.test_xplenty_seed import api, basic, cluster, job


async def _native(client: httpx.AsyncClient, who: Account, job_id: int) -> dict[str, object]:
    r = await client.get(f"/api/v1/jobs/{job_id}", headers=who.headers)
    assert r.status_code == 200, r.text
    data: dict[str, object] = r.json()
    return data


async def _events(client: httpx.AsyncClient, who: Account, job_id: int) -> list[str]:
    r = await client.get(f"/api/v1/jobs/{job_id}/history", headers=who.headers)
    return [str(e.get("reason")) for e in r.json()["results"]]


async def test_a_job_on_a_new_cluster_waits_and_then_runs(
    client: httpx.AsyncClient, admin: Account, svc: Services
) -> None:
    c = await cluster(client, admin)  # pending: no node has joined
    assert c["status"] == "pending"
    j = await job(client, admin, c["id"])  # accepted, not 422
    assert j["status"] == "queued" and j["cluster_id"] == c["id"]
    await clusters.advance_clusters(svc)
    assert (await _native(client, admin, j["id"]))["status"] == "onhold"
    # The cluster's node joins: the cluster becomes available and the job starts.
    await add_node(svc, admin.org, "n1", cluster="c1")
    await clusters.advance_clusters(svc)
    native = await _native(client, admin, j["id"])
    assert native["status"] in ("new", "voting") and native["nodes"] == ["n1"], native
    r = await client.get(f"{api(admin)}/jobs/{j['id']}", headers=basic(admin))
    assert r.json()["status"] == "pending"
    assert any("waiting for cluster c1" in r for r in await _events(client, admin, j["id"]))


async def test_the_job_fails_when_its_cluster_ends_first(
    client: httpx.AsyncClient, admin: Account, svc: Services
) -> None:
    c = await cluster(client, admin)
    j = await job(client, admin, c["id"])
    r = await client.delete(f"{api(admin)}/clusters/{c['id']}", headers=basic(admin))
    assert r.status_code == 200, r.text
    await clusters.advance_clusters(svc)
    r = await client.get(f"{api(admin)}/jobs/{j['id']}", headers=basic(admin))
    failed = r.json()
    assert failed["status"] == "failed" and failed["failed_at"], failed
    reasons = await _events(client, admin, j["id"])
    assert any("cluster c1 is" in r and "before it was available" in r for r in reasons), reasons


async def test_the_native_api_waits_with_a_timeout(
    client: httpx.AsyncClient, admin: Account, svc: Services
) -> None:
    r = await client.post(
        "/api/v1/clusters", json={"name": "later", "nodes": 1}, headers=admin.headers
    )
    assert r.status_code == 201, r.text
    svc.settings = svc.settings.replace(cluster_wait=0)  # JOBYARD_CLUSTER_WAIT
    r = await client.post(
        "/api/v1/jobs", json={"command": "true", "cluster": "later"}, headers=admin.headers
    )
    assert r.status_code == 201, r.text  # not 422: it waits for the cluster
    job_id = r.json()["id"]
    assert r.json()["status"] == "onhold"
    await clusters.advance_clusters(svc)
    done = await _native(client, admin, job_id)
    assert done["status"] == JobStatus.TIMED_OUT.value, done
    reasons = await _events(client, admin, job_id)
    assert any("was not available within 0 s" in r for r in reasons), reasons
