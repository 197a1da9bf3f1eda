"""Secret environment variables of native jobs: stored sealed, shown as ••••, opened only
for the node that runs them, masked in the output the server stores and streams."""

from __future__ import annotations

import httpx
import orjson
import sqlalchemy as sa

from jobyard.domain.secrets import MASK
from jobyard.service.context import Services
from jobyard.service.rounds import Report, apply_reports, commit_message
from jobyard.store.tables import metadata
from tests.conftest import Factory

CANARY = "canary-7f3a9b2e-secret"


async def dump(svc: Services) -> str:
    """Every row of every table, as text."""
    rows: list[str] = []
    async with svc.db.read() as tx:
        for table in metadata.sorted_tables:
            for row in (await tx.conn.execute(sa.select(table))).all():
                rows.append(repr(tuple(row)))
    return "\n".join(rows)


async def test_secret_env_is_sealed_masked_and_opened_for_the_node(
    ssvc: Services, sclient: httpx.AsyncClient, sfactory: Factory
) -> None:
    admin = await sfactory.account(await sfactory.org("acme"))
    body = {
        "command": "echo $TOKEN",
        "nodes": ["web1"],
        "env": {"PLAIN": "shown"},
        "secret_env": {"TOKEN": CANARY},
        "draft": True,
    }
    r = await sclient.post("/api/v1/jobs", json=body, headers=admin.headers)
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["env"] == {"PLAIN": "shown", "TOKEN": MASK}
    assert job["secret_env"] == ["TOKEN"]
    assert CANARY not in r.text
    assert CANARY not in await dump(ssvc)

    # A client that sends back what it read keeps the secret; a new value replaces it.
    r = await sclient.put(
        f"/api/v1/jobs/{job['id']}",
        json={
            **{k: v for k, v in body.items() if k != "draft"},
            "env": job["env"],
            "secret_env": None,
        },
        headers=admin.headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["env"] == {"PLAIN": "shown", "TOKEN": MASK}
    r = await sclient.patch(
        f"/api/v1/jobs/{job['id']}", json={"env": job["env"]}, headers=admin.headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["env"] == {"PLAIN": "shown", "TOKEN": MASK}
    async with ssvc.db.read() as tx:
        stored = await tx.jobs.get_any(job["id"])
    assert stored is not None
    frame = orjson.loads(commit_message(ssvc, stored, "web1"))
    assert frame["env"] == {"PLAIN": "shown", "TOKEN": CANARY}
    assert frame["secret_env"] == ["TOKEN"]

    r = await sclient.post(f"/api/v1/jobs/{job['id']}/submit", headers=admin.headers)
    assert r.status_code == 200, r.text
    async with ssvc.db.read() as tx:
        stored = await tx.jobs.get_any(job["id"])
    assert stored is not None
    org_id = stored.org_id
    await apply_reports(
        ssvc,
        [
            Report(
                "output",
                org_id,
                "web1",
                job["id"],
                stored.attempt,
                stream="stdout",
                data=f"token is {CANARY[:9]}",
            ),
            Report(
                "output",
                org_id,
                "web1",
                job["id"],
                stored.attempt,
                stream="stdout",
                data=f"{CANARY[9:]}\n",
            ),
            Report(
                "output",
                org_id,
                "web1",
                job["id"],
                stored.attempt,
                stream="stderr",
                data=f"{CANARY}\n",
            ),
        ],
    )
    r = await sclient.get(f"/api/v1/jobs/{job['id']}/output/web1/stdout", headers=admin.headers)
    assert r.status_code == 200, r.text
    assert r.text == f"token is {MASK}\n"
    assert CANARY not in await dump(ssvc)


async def test_mask_without_a_stored_secret_is_refused(
    sclient: httpx.AsyncClient, sfactory: Factory
) -> None:
    admin = await sfactory.account(await sfactory.org("acme"))
    for body in ({"env": {"A": MASK}}, {"secret_env": {"A": MASK}}):
        r = await sclient.post(
            "/api/v1/jobs",
            json={"command": "true", "nodes": ["n"], **body},
            headers=admin.headers,
        )
        assert r.status_code == 422, r.text
        assert "A" in r.json()["detail"]
    r = await sclient.post(
        "/api/v1/jobs",
        json={"command": "true", "nodes": ["n"], "env": {"A": "1"}, "secret_env": {"A": "2"}},
        headers=admin.headers,
    )
    assert r.status_code == 422
