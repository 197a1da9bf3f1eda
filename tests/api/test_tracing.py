"""OpenTelemetry: with JOBYARD_OTEL on, requests are spans named by route, with job ids."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from jobyard.api.app import create_app
from jobyard.service.context import Services
from tests.conftest import Account

_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def _provider() -> Iterator[None]:
    # The global provider can be set once per process: the one this module's spans go to.
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
    trace.set_tracer_provider(provider)
    yield


async def test_requests_are_spans_with_the_job_id(svc: Services, admin: Account) -> None:
    _EXPORTER.clear()
    app = create_app(services=svc, migrate=False, run_loops=False)
    traced = create_app(
        services=Services(db=svc.db, settings=svc.settings.replace(otel=True)),
        migrate=False,
        run_loops=False,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=traced), base_url="http://testserver"
    ) as c:
        made = await c.post(
            "/api/v1/jobs",
            json={"command": "true", "count": 1, "draft": True},
            headers=admin.headers,
        )
        assert made.status_code == 201, made.text
        job_id = made.json()["id"]
        got = await c.get(f"/api/v1/jobs/{job_id}", headers=admin.headers)
        assert got.status_code == 200
        await c.get("/healthz")
    spans = [s for s in _EXPORTER.get_finished_spans() if s.kind == trace.SpanKind.SERVER]
    names = [s.name for s in spans]
    assert "GET /api/v1/jobs/{job_id}" in names, names
    assert not any("healthz" in n for n in names), names
    job_span = next(s for s in spans if s.name == "GET /api/v1/jobs/{job_id}")
    assert job_span.attributes is not None
    assert job_span.attributes.get("jobyard.job_id") == str(job_id)
    assert job_span.attributes.get("http.route") == "/api/v1/jobs/{job_id}"

    # Without the setting, nothing is traced.
    _EXPORTER.clear()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as c:
        await c.get(f"/api/v1/jobs/{job_id}", headers=admin.headers)
    assert _EXPORTER.get_finished_spans() == ()
