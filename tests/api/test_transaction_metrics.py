"""Database transaction times in /metrics, labelled by kind and by the use case that opened
the transaction."""

from __future__ import annotations

import httpx

from tests.conftest import Account
from tests.e2e.test_metrics import sample


async def test_a_submit_shows_its_write_transaction_in_metrics(
    client: httpx.AsyncClient, admin: Account
) -> None:
    before = (await client.get("/metrics")).text
    assert sample(before, "jobyard_db_transaction_seconds_count", use_case="create_job") is None
    made = await client.post(
        "/api/v1/jobs", json={"command": "uptime", "nodes": ["a"]}, headers=admin.headers
    )
    assert made.status_code == 201, made.text
    seen = await client.get(f"/api/v1/jobs/{made.json()['id']}", headers=admin.headers)
    assert seen.status_code == 200

    text = (await client.get("/metrics")).text
    writes = sample(
        text, "jobyard_db_transaction_seconds_count", kind="write", use_case="create_job"
    )
    assert writes == 1.0, [line for line in text.splitlines() if "transaction" in line]
    total = sample(text, "jobyard_db_transaction_seconds_sum", kind="write", use_case="create_job")
    assert total is not None and total > 0
    # Reads are timed too, apart from writes.
    assert any(
        line.startswith('jobyard_db_transaction_seconds_count{kind="read"')
        for line in text.splitlines()
    )
