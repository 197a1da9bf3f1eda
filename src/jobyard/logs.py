"""Structured logs: JSON lines when JOBYARD_LOG_FORMAT=json, readable text otherwise.

Log lines carry ``job_id``, ``node`` and ``org`` when they are known: given per call
(``log.info(..., extra={"job_id": 7})``) or bound for a stretch of work with
``bind(node="web1")`` (an agent binds its node for its whole life; the binding follows the
asyncio tasks started inside it).
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any

FIELDS = ("job_id", "node", "org")
_BOUND: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "jobyard_log", default=None
)


@contextlib.contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Add ``fields`` to every log line written inside the block (and its tasks)."""
    given = {k: v for k, v in fields.items() if v is not None}
    token = _BOUND.set({**(_BOUND.get() or {}), **given})
    try:
        yield
    finally:
        _BOUND.reset(token)


def context_of(record: logging.LogRecord) -> dict[str, Any]:
    """The record's job_id, node and org: given with the call, else bound."""
    bound = _BOUND.get() or {}
    out = {}
    for key in FIELDS:
        value = getattr(record, key, bound.get(key))
        if value is not None:
            out[key] = value
    return out


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = context_of(record)
        if not fields:
            return line
        return line + " [" + " ".join(f"{k}={v}" for k, v in fields.items()) + "]"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update(context_of(record))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


def setup(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOBYARD_LOG_FORMAT", "text") == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
