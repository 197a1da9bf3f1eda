"""The public Xplenty client, PyPI ``xplenty`` 3.0.0, driven against a real jobyard server:
clusters (create, list, get, terminate), packages, jobs on a just-created cluster (they
wait for it, then run), stop, the rate limit, and watchers through the client's own
requests (3.0.0 has no watcher methods). Installed by ``make install`` (see Makefile)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from jobyard.domain.jobs import JobStatus, NodeRunStatus
from jobyard.service import clusters
from jobyard.service.context import Services
from tests.conftest import Account
from tests.dialects.conftest import add_node, drive
from tests.dialects.xplenty.test_xplenty_packages import REPORT, _post

api_module = pytest.importorskip("xplenty.xplenty_api")
S = NodeRunStatus


async def test_xplenty_3_client_end_to_end(
    live_url: str,
    client: httpx.AsyncClient,
    admin: Account,
    svc: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The client's base URL is a module constant: point it at jobyard, nothing else changes.
    monkeypatch.setattr(api_module, "API_URL", f"{live_url}/compat/xplenty/%s/api/")
    xp = api_module.XplentyClient(account_id=admin.org, api_key=admin.token)

    def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
        return asyncio.to_thread(fn, *args, **kwargs)

    task = await _post(client, admin, "tasks", REPORT)
    (package,) = await call(xp.get_packages)
    assert (package.id, package.name) == (task["id"], "report")
    assert (await call(xp.get_package, task["id"])).variables == {"day": None, "rows": "10"}

    # A cluster is created without nodes of its own yet; a job on it is accepted and waits.
    cluster = await call(xp.create_cluster, "production", 1, "c1", "reports")
    assert (cluster.name, cluster.status, cluster.nodes) == ("c1", "pending", 1)
    job = await call(xp.add_job, cluster.id, task["id"], {"day": "mon"}, {"rows": "3"})
    assert (job.status, job.cluster_id, job.package_id) == ("queued", cluster.id, task["id"])
    assert job.variables == {"day": "mon", "rows": "3"}  # dynamic variables win
    await add_node(svc, admin.org, "n1", cluster="c1")
    await clusters.advance_clusters(svc)
    assert (await call(xp.get_cluster, cluster.id)).status == "available"
    assert (await call(xp.get_job, job.id)).status == "pending"
    await drive(svc, job.id, job=[JobStatus.VOTING], runs={"n1": [S.READY]})
    await drive(svc, job.id, job=[JobStatus.RUNNING], runs={"n1": [S.RUNNING, S.SUCCEEDED]})
    await drive(svc, job.id, job=[JobStatus.COMPLETE])
    done = await call(xp.get_job, job.id)
    assert done.status == "completed" and done.completed_at is not None and done.progress == 1.0
    assert [j.id for j in await call(xp.get_jobs)] == [job.id]

    # Watchers, through the client's own authenticated requests.
    base = api_module.API_URL % admin.org
    watched = await call(xp.post, f"{base}jobs/{job.id}/watchers")
    assert watched["job_url"].endswith(f"/jobs/{job.id}") and watched["created_at"]
    (watcher,) = await call(xp.get, f"{base}jobs/{job.id}/watchers")
    assert watcher["id"] == admin.user_id and watcher["display_name"]
    watched = await call(xp.post, f"{base}clusters/{cluster.id}/watchers")
    assert watched["cluster_url"].endswith(f"/clusters/{cluster.id}")

    # A second job, stopped: pending_stoppage, then stopped with its time stamps.
    second = await call(xp.add_job, cluster.id, task["id"], {"day": "tue"})
    stopping = await call(xp.stop_job, second.id)
    assert stopping["status"] == "pending_stoppage"
    stopped = await call(xp.get_job, second.id)
    assert stopped.status == "stopped" and stopped.completed_at is not None

    limits = await call(xp.get_account_limits)
    again = await call(xp.get_account_limits)
    assert limits.limit > 0 and again.remaining == limits.remaining  # asking costs nothing

    terminated = await call(xp.terminate_cluster, cluster.id)
    assert terminated.status == "pending_terminate"
    assert [c.id for c in await call(xp.get_clusters)] == [cluster.id]
    # A job on a terminating cluster is refused, and the client raises its own error.
    with pytest.raises(api_module.XplentyAPIException):
        await call(xp.add_job, cluster.id, task["id"], {"day": "wed"})
