"""The baseline: an empty FastAPI POST endpoint, served by uvicorn like ``jobyard serve``.

``POST /empty`` answers ``{}`` without reading the body (the DESIGN.md baseline);
``POST /parsed`` also parses the body into a small pydantic model, for reference;
``GET /empty/{item}`` answers ``{"id": item}`` (the baseline of a read by id).
Uvicorn gets the same options as jobyard's server (auto loop and HTTP parser, so uvloop
and httptools when installed; no access log; one process).
"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()


class Body(BaseModel):
    command: str
    nodes: list[str]
    quorum: str | None = None
    run_timeout: int | None = None


@app.post("/empty", status_code=201)
async def empty() -> dict[str, Any]:
    return {}


@app.post("/parsed", status_code=201)
async def parsed(body: Body) -> dict[str, Any]:
    return {"nodes": len(body.nodes)}


@app.get("/empty/{item}")
async def empty_get(item: int) -> dict[str, Any]:
    return {"id": item}


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
