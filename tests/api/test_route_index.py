"""The routers' guards (api/route_index.py) answer exactly as the routers' own walks: for
every route's path, variants of it and paths no route has, each router of the app matches
(fully, partly or not) as it does unguarded."""

from __future__ import annotations

import re
from typing import Any

from fastapi.routing import _IncludedRouter
from starlette.routing import Match

from jobyard.api.route_index import literal_start
from tests.api.asgi import schema_app

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
OTHER_PATHS = [
    "/", "", "/api", "/api/", "/api/v1", "/api/v1/", "/api/v1/jobs", "/api/v1/jobs/",
    "/api/v1/jobs/finished", "/api/v1/jobs/7/", "/api/v1/nothing", "/compat", "/compat/",
    "/compat/chef", "/static", "/static/", "/static/app.css", "/jobs", "/nope", "//",
    "/API/v1/jobs", "/api/v1/jobs%2F7", "/compat/xplenty/acme/api/jobs",
]  # fmt: skip


def _paths(app: Any) -> list[str]:
    paths = set(OTHER_PATHS)
    for route in app.router.routes:
        contexts = route.effective_route_contexts() if isinstance(route, _IncludedRouter) else []
        for context in contexts:
            path = context.path or getattr(context.starlette_route, "path", "")
            for value in ("7", "acme", "a/b"):
                concrete = re.sub(r"\{[^}]*\}", value, path)
                paths |= {concrete, concrete + "/", concrete.rstrip("/"), concrete + "/x"}
    return sorted(paths)


def _scope(kind: str, method: str, path: str) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": kind, "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": b"", "headers": [], "app": None,
    }  # fmt: skip
    if kind == "http":
        scope["method"] = method
    return scope


def test_every_router_matches_as_unguarded() -> None:
    app = schema_app()
    routers = [r for r in app.router.routes if isinstance(r, _IncludedRouter)]
    guarded = [r for r in routers if hasattr(r.matches, "__wrapped__")]
    assert len(guarded) >= len(routers) - 2, "most routers are guarded"
    checked = skipped = 0
    for path in _paths(app):
        for kind, method in [("http", m) for m in METHODS] + [("websocket", "GET")]:
            for router in guarded:
                want = router.matches.__wrapped__(_scope(kind, method, path))  # type: ignore[attr-defined]
                got = router.matches(_scope(kind, method, path))
                assert got[0] == want[0], (kind, method, path, router.original_router.prefix)
                if want[0] is not Match.NONE:
                    assert got[1] == want[1], (kind, method, path)
                else:
                    skipped += 1
                checked += 1
    assert checked > 10_000 and skipped > checked // 2


def test_literal_start() -> None:
    assert literal_start("/api/v1/jobs/{job_id}") == "/api/v1/jobs/"
    assert literal_start("/compat/xplenty/{account}/api/jobs") == "/compat/xplenty/"
    assert literal_start("/api/v1/jobs") == "/api/v1/jobs"
