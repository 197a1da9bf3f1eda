"""One job through four platforms: created through Chef Push Jobs, run by TheEye polling
agents, watched through Xplenty, stopped through Rescale, its lifecycle read through
TheEye — and every platform tells the same history, in its own words."""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import json
from typing import Any

import httpx

from jobyard.domain.accounts import Role
from jobyard.domain.dialects import rescale
from jobyard.service import dispatch, outbox
from jobyard.service.context import Services
from tests.conftest import Account, Factory


def chef_base(org: str) -> str:
    return f"/compat/chef/organizations/{org}/pushy"


def xplenty(account: Account) -> dict[str, str]:
    key = base64.b64encode(f"{account.token}:".encode()).decode()
    return {"Accept": "application/vnd.xplenty+json", "Authorization": f"Basic {key}"}


def sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in text.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if ": " in line and line[0] != ":"
        )
        if "event" in fields:
            out.append((fields["event"], json.loads(fields["data"])))
    return out


async def poll(client: httpx.AsyncClient, agent: Account, host: str) -> list[dict[str, Any]]:
    r = await client.get(
        f"/compat/theeye/{agent.org}/job", params={"hostname": host}, headers=agent.headers
    )
    assert r.status_code == 200, r.text
    jobs: list[dict[str, Any]] = r.json()["jobs"]
    return jobs


async def test_one_job_through_every_dialect(
    client: httpx.AsyncClient, admin: Account, factory: Factory, svc: Services
) -> None:
    org = admin.org
    watcher = await factory.account(org, Role.USER)
    agent = await factory.account(org, Role.AGENT)

    # TheEye agents poll: their nodes come online.
    for host in ("n1", "n2"):
        assert await poll(client, agent, host) == []

    # 1. Chef Push Jobs starts the job.
    r = await client.post(
        f"{chef_base(org)}/jobs",
        json={"command": "sleep 600", "nodes": ["n1", "n2"], "run_timeout": 900},
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    chef_id = r.json()["id"]
    native = int(chef_id, 16)
    theeye_id = f"{native:024x}"
    rescale_id = rescale.render_id(native)

    # 2. Xplenty: another user watches it.
    r = await client.post(
        f"/compat/xplenty/{org}/api/jobs/{native}/watchers", headers=xplenty(watcher)
    )
    assert r.status_code == 201, r.text

    # 3. The dispatcher opens voting; the TheEye agents vote, then take the job.
    await dispatch.start_jobs(svc)
    assert await poll(client, agent, "n1") == []  # voted; n2 has not yet
    handed = await poll(client, agent, "n2")
    assert [j["id"] for j in handed] == [theeye_id]
    assert [j["id"] for j in await poll(client, agent, "n1")] == [theeye_id]
    r = await client.get(f"{chef_base(org)}/jobs/{chef_id}", headers=admin.headers)
    assert (r.json()["status"], r.json()["nodes"]) == ("running", {"running": ["n1", "n2"]})
    r = await client.get(f"/compat/xplenty/{org}/api/jobs/{native}", headers=xplenty(watcher))
    assert r.json()["status"] == "running"
    r = await client.get(
        f"/compat/theeye/{org}/job/{theeye_id}/lifecycle", params={"access_token": admin.token}
    )
    assert r.json() == "assigned"

    # 4. Rescale stops it.
    r = await client.post(
        f"/compat/rescale/api/jobs/{rescale_id}/stop/",
        headers={"Authorization": f"Token {admin.token}"},
    )
    assert r.status_code == 202, r.text

    # A late result from an agent changes nothing.
    r = await client.put(
        f"/compat/theeye/{org}/job/{theeye_id}",
        params={"hostname": "n1"},
        json={"result": {"state": "success", "data": {"code": 0}}},
        headers=agent.headers,
    )
    assert r.status_code == 200 and r.json()["lifecycle"] == "terminated"

    # 5. Every platform reads the same end, in its own words.
    r = await client.get(
        f"/compat/theeye/{org}/job/{theeye_id}/lifecycle", params={"access_token": admin.token}
    )
    assert r.json() == "terminated"
    eye = (
        await client.get(
            f"/compat/theeye/{org}/job/{theeye_id}", params={"access_token": admin.token}
        )
    ).json()
    assert eye["state"] == "canceled"
    chef = (await client.get(f"{chef_base(org)}/jobs/{chef_id}", headers=admin.headers)).json()
    assert (chef["status"], chef["nodes"]) == ("aborted", {"aborted": ["n1", "n2"]})
    xp = (
        await client.get(f"/compat/xplenty/{org}/api/jobs/{native}", headers=xplenty(watcher))
    ).json()
    assert xp["status"] == "stopped"
    statuses = (
        await client.get(
            f"/compat/rescale/api/jobs/{rescale_id}/statuses/",
            headers={"Authorization": f"Token {admin.token}"},
        )
    ).json()["results"]
    assert [s["status"] for s in statuses] == [
        "Completed",
        "Stopping",
        "Executing",
        "Validated",
        "Started",
        "Queued",
        "Pending",
    ]
    assert statuses[1]["statusReason"] == "User Terminated"

    # One history: the native one, which each platform's view is made from.
    history = (await client.get(f"/api/v1/jobs/{native}/history", headers=admin.headers)).json()[
        "results"
    ]
    assert [h["status"] for h in history] == ["draft", "new", "voting", "running", "aborted"]
    assert history[-1]["actor"] == admin.email
    stopped_at = dt.datetime.fromisoformat(history[-1]["created_at"].replace("Z", "+00:00"))
    # The same moment everywhere (each at its platform's precision).
    assert eye["last_update"] == stopped_at.strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{stopped_at.microsecond // 1000:03d}Z"
    )
    assert email.utils.parsedate_to_datetime(chef["updated_at"]) == stopped_at.replace(
        microsecond=0
    )
    assert dt.datetime.fromisoformat(statuses[0]["statusDate"].replace("Z", "+00:00")) == stopped_at
    # Chef's feed replays the same transitions.
    r = await client.get(f"{chef_base(org)}/jobs_status_feed/{chef_id}", headers=admin.headers)
    names = [name for name, _ in sse(r.text)]
    assert names[0] == "start" and names.count("quorum_vote") == 2
    assert "quorum_succeeded" in names and names.count("run_start") == 2
    assert ("job_complete", "aborted") in [(n, d.get("status")) for n, d in sse(r.text)]
    # The Xplenty watcher heard that the job stopped.
    await outbox.deliver_in_app(svc)
    notes = (
        await client.get(f"/compat/xplenty/{org}/api/user/notifications", headers=xplenty(watcher))
    ).json()
    assert notes and any("stop" in (n["title"] + n["message"]).lower() for n in notes), notes
