"""Turning templates into responses: the Jinja2 environment, its filters, and the
headers every dashboard page carries."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from jobyard import __version__
from jobyard.domain.outcomes import STATUS_TONE, job_outcome
from jobyard.domain.secrets import hide_sealed_text

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

# Scripts and styles come only from /static; pages may not be framed.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

# How the words of other objects look (clusters, triggers, decisions); job and node-run
# words take their tone from the outcome rule (domain.outcomes).
TONES = {
    "available": "ok",
    "online": "ok",
    "success": "ok",
    "approved": "ok",
    "fired": "ok",
    "enabled": "ok",
    "skipped": "warn",
    "error": "bad",
    "failure": "bad",
    "rejected": "bad",
    "pending_terminate": "warn",
    "terminating": "warn",
    "scaling": "live",
    "pending": "live",
    "creating": "live",
}


def tone(status: object) -> str:
    word = str(status)
    return STATUS_TONE[word].value if word in STATUS_TONE else TONES.get(word, "idle")


def when(value: dt.datetime | None) -> str:
    """A moment as UTC text; the page's script shows it in the reader's time zone."""
    if value is None:
        return ""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def seconds(value: float | None) -> str:
    """A duration in words: 0.4 s, 12 s, 3 min 04 s, 2 h 05 min."""
    if value is None:
        return ""
    if value < 10:
        return f"{value:.1f} s"
    whole = round(value)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    return f"{hours // 24} d {hours % 24} h"


def duration(start: dt.datetime | None, end: dt.datetime | None) -> str:
    if start is None:
        return ""
    stop = end or dt.datetime.now(dt.UTC)
    return seconds(max(0.0, (stop - start).total_seconds()))


def plural(count: int, word: str, many: str | None = None) -> str:
    return f"{count} {word if count == 1 else (many or word + 's')}"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html", "svg"], default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(tone=tone, when=when, iso=iso, seconds=seconds, plural=plural)
    env.globals.update(duration=duration, version=__version__, outcome=job_outcome)
    return env


ENV = _environment()


def url_with(request: Request, **params: Any) -> str:
    """This page's path and query with some parameters changed (None removes one)."""
    query = dict(request.query_params)
    for key, value in params.items():
        if value is None or value == "":
            query.pop(key, None)
        else:
            query[key] = str(value)
    url = (
        request.url.replace_query_params(**query)
        if query
        else request.url.remove_query_params(list(request.query_params.keys()))
    )
    return url.path + (f"?{url.query}" if url.query else "")


def render_text(template: str, context: dict[str, Any]) -> str:
    return ENV.get_template(template).render(context)


def html(
    body: str, *, status_code: int = 200, headers: dict[str, str] | None = None
) -> HTMLResponse:
    return HTMLResponse(
        hide_sealed_text(body),
        status_code=status_code,
        headers={**SECURITY_HEADERS, **(headers or {})},
    )
