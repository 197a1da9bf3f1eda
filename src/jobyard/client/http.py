"""The HTTP client."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any

import httpx

FINISHED = {"complete", "quorum_failed", "timed_out", "aborted"}


class ApiError(Exception):
    """The server answered with an error (problem+json is read for its detail)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


def _detail(response: httpx.Response) -> str:
    """An error answer in words: problem+json's detail, else the body."""
    detail = response.text
    try:
        body = response.json()
        detail = body.get("detail") or body.get("message") or detail
    except ValueError:
        pass
    return str(detail)


class Client:
    def __init__(self, server: str, token: str, *, timeout: float = 30.0) -> None:
        self.server = server.rstrip("/")
        self.http = httpx.Client(
            base_url=self.server,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(0, f"cannot reach {self.server}: {exc}") from exc
        if response.status_code >= 400:
            raise ApiError(response.status_code, _detail(response))
        if response.status_code == 204 or not response.content:
            return None
        if response.headers.get("content-type", "").startswith("application/"):
            return response.json()
        return response.text

    # -- any route (definitions as files use the collections generically)
    def request(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        kwargs: dict[str, Any] = {"params": clean}
        if body is not None:
            kwargs["json"] = body
        return self._call(method, path, **kwargs)

    def all_pages(self, path: str) -> list[dict[str, Any]]:
        """Every item of a paginated collection (or of a plain list)."""
        items: list[dict[str, Any]] = []
        page = 1
        while True:
            got = self.request("GET", path, page=page, page_size=100)
            if isinstance(got, list):
                return got
            items.extend(got["results"])
            if not got.get("next"):
                return items
            page += 1

    # -- accounts
    def me(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/api/v1/me")
        return result

    # -- jobs
    def create_job(self, **body: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/api/v1/jobs", json=body)
        return result

    def get_job(self, job_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/api/v1/jobs/{job_id}")
        return result

    def list_jobs(self, **params: Any) -> dict[str, Any]:
        clean = {k: v for k, v in params.items() if v is not None}
        result: dict[str, Any] = self._call("GET", "/api/v1/jobs", params=clean)
        return result

    def stop_job(self, job_id: int, reason: str | None = None) -> dict[str, Any]:
        body = {"reason": reason} if reason else None
        result: dict[str, Any] = self._call("POST", f"/api/v1/jobs/{job_id}/stop", json=body)
        return result

    def history(self, job_id: int) -> list[dict[str, Any]]:
        page: dict[str, Any] = self._call(
            "GET", f"/api/v1/jobs/{job_id}/history", params={"page_size": 100}
        )
        results: list[dict[str, Any]] = page["results"]
        return results

    def output(self, job_id: int, node: str, stream: str = "stdout") -> str:
        text = self._call("GET", f"/api/v1/jobs/{job_id}/output/{node}/{stream}")
        return "" if text is None else str(text)

    def events(
        self, job_id: int, *, output: bool = False, after: int = 0
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Follow a job's server-sent events (with ``output``, its nodes' output too) until
        the job ends: ``(event name, data)`` pairs. No polling: one streaming request."""
        params = {"output": "true"} if output else {}
        headers = {"Accept": "text/event-stream"}
        if after:
            headers["Last-Event-ID"] = str(after)
        timeout = httpx.Timeout(10.0, read=None)
        path = f"/api/v1/jobs/{job_id}/events"
        try:
            with self.http.stream(
                "GET", path, params=params, headers=headers, timeout=timeout
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise ApiError(response.status_code, _detail(response))
                name, data = "message", ""
                for line in response.iter_lines():
                    if not line:
                        if data:
                            yield name, json.loads(data)
                        name, data = "message", ""
                    elif line.startswith("event:"):
                        name = line[6:].strip()
                    elif line.startswith("data:"):
                        data += line[5:].lstrip()
        except httpx.HTTPError as exc:
            raise ApiError(0, f"lost the event stream of {self.server}: {exc}") from exc

    def wait(
        self, job_id: int, timeout: float | None = None, interval: float = 0.25
    ) -> dict[str, Any]:
        """Poll until the job finishes (or ``timeout`` seconds pass) and return it."""
        return _poll(
            lambda: self.get_job(job_id), lambda j: j["status"] in FINISHED, timeout, interval
        )

    # -- nodes
    def nodes(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/api/v1/nodes")
        return result

    # -- tasks
    def list_tasks(self, **params: Any) -> dict[str, Any]:
        clean = {k: v for k, v in params.items() if v is not None}
        result: dict[str, Any] = self._call("GET", "/api/v1/tasks", params=clean)
        return result

    def task_by_name(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/api/v1/tasks/by-name/{name}")
        return result

    def run_task(self, task_id: int, arguments: Any = None) -> dict[str, Any]:
        body = {"arguments": arguments} if arguments is not None else {}
        result: dict[str, Any] = self._call("POST", f"/api/v1/tasks/{task_id}/run", json=body)
        return result

    # -- stacks
    def stack_by_name(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/api/v1/stacks/by-name/{name}")
        return result

    def run_stack(self, stack_id: int, arguments: Any = None) -> dict[str, Any]:
        """Run a stack: the job it started (``stack_run_id`` names the run of a chain)."""
        body = {"arguments": arguments} if arguments is not None else {}
        result: dict[str, Any] = self._call("POST", f"/api/v1/stacks/{stack_id}/run", json=body)
        return result

    def get_stack_run(self, run_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/api/v1/stack-runs/{run_id}")
        return result

    def wait_stack_run(
        self, run_id: int, timeout: float | None = None, interval: float = 0.25
    ) -> dict[str, Any]:
        """Poll until the stack run ends (or ``timeout`` seconds pass) and return it."""
        return _poll(
            lambda: self.get_stack_run(run_id),
            lambda r: r["status"] != "running",
            timeout,
            interval,
        )


def _poll(
    read: Callable[[], dict[str, Any]],
    done: Callable[[dict[str, Any]], bool],
    timeout: float | None,
    interval: float,
) -> dict[str, Any]:
    """``read()`` until ``done`` says so or ``timeout`` seconds pass; the last answer."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        found = read()
        if done(found) or (deadline is not None and time.monotonic() > deadline):
            return found
        time.sleep(interval)
