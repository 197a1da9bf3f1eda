"""A job's event stream with its nodes' output: each byte printed goes out once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from jobyard.domain.outputs import OutputCaps, Printed
from jobyard.service import outputs
from jobyard.service.context import Services
from tests.api.conftest import Tenant
from tests.api.test_notify_api import new_job, read_events, serving


async def outputs_of(lines: AsyncIterator[str], count: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while len(got) < count:
        [event] = await read_events(lines, 1)
        if event.get("event") == "output":
            got.append(event["data"])
    return got


async def test_a_chunk_stored_and_queued_at_once_goes_out_once(
    svc: Services, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk committed while the stream reads what is stored reaches the stream twice
    (in the stored text and in the live queue): only the bytes past the stored text are
    sent, so a follower prints every line once."""
    async with serving(svc) as base, httpx.AsyncClient(base_url=base, timeout=10) as http:
        job = await new_job(http, tenant.user)
        async with svc.db.begin() as tx:
            run = await tx.jobs.run(job, "n1")
            assert run is not None
            await tx.outputs.append(run.id, "stdout", "one\n", OutputCaps(1000, 1000))
        real = outputs.kept_streams

        async def racing(svc: Services, runs: Any) -> Any:
            kept = await real(svc, runs)
            topic = f"output:{job}"
            svc.hub.publish_local(topic, Printed("n1", "stdout", "one\n", 4))  # all stored
            svc.hub.publish_local(topic, Printed("n1", "stdout", "one\ntwo\n", 8))  # half
            svc.hub.publish_local(topic, Printed("n1", "stdout", "three\n", 14))  # new
            svc.hub.publish_local(topic, Printed("n1", "stderr", "oops\n", 5))  # new stream
            return kept

        monkeypatch.setattr(outputs, "kept_streams", racing)
        url = f"/api/v1/jobs/{job}/events?output=true"
        async with http.stream("GET", url, headers=tenant.user.headers) as r:
            assert r.status_code == 200
            got = await asyncio.wait_for(outputs_of(r.aiter_lines(), 4), 10)
    assert [(o["stream"], o["data"], o["offset"]) for o in got] == [
        ("stdout", "one\n", 0),
        ("stdout", "two\n", None),
        ("stdout", "three\n", None),
        ("stderr", "oops\n", None),
    ]
