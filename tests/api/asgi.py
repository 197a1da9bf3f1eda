"""Calling the ASGI app directly, for tests that must also reach streaming routes."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Message

from jobyard.api.app import create_app
from jobyard.api.responses import dumps
from jobyard.settings import Settings


def schema_app() -> FastAPI:
    """An app to read the OpenAPI document from (its database is never opened)."""
    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="jobyard-schema-")))
    return create_app(settings, migrate=False, run_loops=False)


async def asgi_request(
    app: FastAPI,
    method: str,
    url: str,
    headers: dict[str, str],
    body: Any,
    *,
    content_type: str = "application/json",
) -> httpx.Response:
    """Call the ASGI app directly. Unlike httpx's ASGI transport this returns as soon as a
    server-sent-event stream has started, instead of waiting for it to end."""
    target = httpx.URL("http://testserver" + url)
    # bytes are sent as they are (e.g. JSON that orjson cannot write, such as huge integers)
    raw = body if isinstance(body, bytes) else (b"" if body is None else dumps(body))
    sent_headers = {**headers, "host": "testserver"}
    if body is not None:
        sent_headers["content-type"] = content_type
        sent_headers["content-length"] = str(len(raw))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": target.path,
        "raw_path": target.raw_path.split(b"?")[0],
        "query_string": target.query,
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in sent_headers.items()],
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 50000),
        "state": {},
    }
    done = asyncio.Event()
    start: dict[str, Any] = {}
    chunks: list[bytes] = []
    body_sent = False

    async def receive() -> Message:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
            kinds = [v for k, v in message.get("headers", []) if k.lower() == b"content-type"]
            if kinds and kinds[0].startswith(b"text/event-stream"):
                done.set()  # a stream: its status is all the walker needs
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                done.set()

    task = asyncio.create_task(app(scope, receive, send))
    waiter = asyncio.create_task(done.wait())
    await asyncio.wait({task, waiter}, timeout=20, return_when=asyncio.FIRST_COMPLETED)
    if not task.done():
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    elif task.exception() is not None:
        raise task.exception()  # type: ignore[misc]
    waiter.cancel()
    assert start, f"{method} {url}: no response within 20 s"
    return httpx.Response(
        start["status"],
        headers=[(k.decode(), v.decode()) for k, v in start.get("headers", [])],
        content=b"".join(chunks),
        request=httpx.Request(method, target),
    )


def kragle_fault(path: str, response: Any) -> bool:
    """Kragle answers every fault 500 with ``{code, msg}``, as the real service does: a
    refusal in its convention, not a crash."""
    if not path.startswith("/compat/kragle"):
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and set(body) == {"code", "msg"}
