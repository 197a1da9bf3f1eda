"""OpenTelemetry traces with ``JOBYARD_OTEL=true`` (the ``otel`` extra).

FastAPI's own telemetry makes every HTTP request a server span named by its route
template (health checks and ``/metrics`` left out); a request about a job also carries
``jobyard.job_id`` (and ``jobyard.org`` where the URL names one), so a job's API calls,
dialect calls included, can be found by its id. Spans go to the provider the embedding
program set, or else to one made here that sends them over OTLP when
``opentelemetry-exporter-otlp`` is installed and the standard ``OTEL_EXPORTER_OTLP_*``
variables name an endpoint.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("jobyard")
JOB_PARAMS = ("job_id", "job", "subject_id")
ORG_PARAMS = ("org", "account", "customer")
UNTRACED = ("/healthz", "/readyz", "/metrics")
OFF: dict[str, Any] = {"tracing": False, "metrics": False, "logs": False}


def telemetry(enabled: bool) -> dict[str, Any]:
    """FastAPI's ``telemetry=`` settings: everything off unless ``JOBYARD_OTEL`` is on."""
    if not enabled:
        return dict(OFF)
    try:
        from opentelemetry import trace
    except ImportError:
        log.warning("JOBYARD_OTEL is on but the otel extra is missing: pip install 'jobyard[otel]'")
        return dict(OFF)
    _default_provider(trace)
    return {
        "tracing": True,
        "metrics": False,  # Prometheus has them (/metrics)
        "logs": False,
        "operation_spans": False,
        "auto_configure": True,
        "exclude": _untraced,
    }


def _untraced(scope: MutableMapping[str, Any]) -> bool:
    return scope.get("path") in UNTRACED


def _default_provider(trace: Any) -> None:
    """An SDK provider, unless the program set one already (FastAPI adds OTLP exporters)."""
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
    except ImportError:
        log.warning("JOBYARD_OTEL is on but opentelemetry-sdk is missing")
        return
    trace.set_tracer_provider(TracerProvider(resource=Resource.create({"service.name": "jobyard"})))


class JobSpans:
    """Puts the job id (and organization) a request names in its path on its span."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def marking(message: Message) -> None:
            # The route has matched by the time the answer starts, and its span is open.
            if message["type"] == "http.response.start":
                _mark(scope)
            await send(message)

        await self.app(scope, receive, marking)


def _mark(scope: Scope) -> None:
    from opentelemetry import trace

    # FastAPI keeps the request's server span beside the scope.
    span = getattr(scope.get("fastapi.telemetry"), "span", None) or trace.get_current_span()
    params = scope.get("path_params") or {}
    for names, attribute in ((JOB_PARAMS, "jobyard.job_id"), (ORG_PARAMS, "jobyard.org")):
        for name in names:
            if name in params:
                span.set_attribute(attribute, str(params[name]))
                break
