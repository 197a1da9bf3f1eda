"""A bounded schemathesis run over /openapi.json: no generated request gets a 5xx.

Every operation of the OpenAPI document is called with requests generated from its schema
(valid and invalid), as an admin of a world with one object of each kind. Kragle answers
its faults 500 with ``{code, msg}``, as the real service does; those are its convention,
not crashes. ``JOBYARD_FUZZ_EXAMPLES`` raises the examples per operation (``make fuzz``).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.generation import GenerationMode

from jobyard.api.app import create_app
from jobyard.domain.accounts import Role
from jobyard.service.context import Services
from jobyard.settings import Settings
from jobyard.store import Database
from tests.api.asgi import kragle_fault
from tests.conftest import Factory

EXAMPLES = int(os.environ.get("JOBYARD_FUZZ_EXAMPLES", "6"))


class FuzzWorld:
    def __init__(self, root: Path) -> None:
        self.root = root
        url = f"sqlite:///{root / 'jobyard.db'}"
        self.settings = Settings(data_dir=root / "data", public_url="http://testserver").replace(
            database_url=url
        )
        self.svc = Services(db=Database(url), settings=self.settings)
        self.app = create_app(services=self.svc, migrate=False, run_loops=False)
        self.token = ""
        self.ids: dict[str, str] = {}

    async def build(self) -> None:
        await self.svc.db.migrate()
        factory = Factory(self.svc)
        org = await factory.org("fuzz")
        admin = await factory.account(org, Role.ADMIN, "admin@fuzz.test")
        self.token = admin.token
        transport = httpx.ASGITransport(app=self.app)
        headers = {"Authorization": f"Bearer {admin.token}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers=headers
        ) as c:
            job = await c.post("/api/v1/jobs", json={"command": "true", "count": 1, "draft": True})
            cluster = await c.post("/api/v1/clusters", json={"name": "pool", "nodes": 1})
            task = await c.post(
                "/api/v1/tasks",
                json={"name": "deploy", "command": "true", "target": {"count": 1}},
            )
            schedule = await c.post("/api/v1/schedules", json={"name": "hourly", "period": 3600})
            stack = await c.post(
                "/api/v1/stacks",
                json={"name": "web", "target": {"count": 1}, "command": "true"},
            )
            trigger = None
            if task.status_code == 201 and schedule.status_code == 201:
                trigger = await c.post(
                    "/api/v1/triggers",
                    json={
                        "name": "t",
                        "schedule_id": schedule.json()["id"],
                        "task_id": task.json()["id"],
                        "enabled": False,
                    },
                )
        made = {
            "job_id": job,
            "cluster_id": cluster,
            "task_id": task,
            "schedule_id": schedule,
            "stack_id": stack,
            "trigger_id": trigger,
        }
        for key, response in made.items():
            if response is not None and response.status_code == 201:
                self.ids[key] = str(response.json()["id"])
        self.ids["user_id"] = str(admin.user_id)


def _world() -> FuzzWorld:
    import asyncio

    root = Path(tempfile.mkdtemp(prefix="jobyard-fuzz-"))
    world = FuzzWorld(root)
    # Built on a loop of its own; the app then runs in schemathesis's client.
    done = threading.Event()
    error: list[BaseException] = []

    def build() -> None:
        try:
            asyncio.run(_build_and_close(world))
        except BaseException as exc:  # pragma: no cover - reported below
            error.append(exc)
        finally:
            done.set()

    threading.Thread(target=build).start()
    done.wait(120)
    if error:
        raise error[0]
    return world


async def _build_and_close(world: FuzzWorld) -> None:
    await world.build()
    await world.svc.db.close()


@pytest.fixture(scope="module")
def fuzz_world() -> Iterator[FuzzWorld]:
    world = _world()
    try:
        yield world
    finally:
        shutil.rmtree(world.root, ignore_errors=True)


def strategy(operation: Any, ids: dict[str, str]) -> Any:
    """Valid and invalid requests, with random path parameters and, on native routes,
    also with the world's objects (so that requests reach them, not only 404s)."""
    modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    options = [operation.as_strategy(mode) for mode in modes]
    params = re.findall(r"\{([^}]+)\}", operation.path)
    if params and operation.path.startswith("/api/v1/") and all(p in ids for p in params):
        fixed = {p: ids[p] for p in params}
        options += [operation.as_strategy(mode, path_parameters=fixed) for mode in modes]
    return st.one_of(options)


# Every operation of the whole API, several cases each: longer than the suite's default
# per-test limit on a busy machine.
@pytest.mark.timeout(900)
def test_no_generated_request_gets_a_5xx(fuzz_world: FuzzWorld) -> None:
    api = schemathesis.openapi.from_asgi("/openapi.json", fuzz_world.app)
    headers = {"Authorization": f"Bearer {fuzz_world.token}"}
    failures: list[str] = []
    calls = 0
    for result in api.get_all_operations():
        operation = result.ok()
        if operation.path.endswith(("/stream", "/events")) or "status_feed" in operation.path:
            continue  # server-sent event streams do not end

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        @given(case=strategy(operation, fuzz_world.ids))
        def call(case: Any) -> None:
            nonlocal calls
            calls += 1
            response = case.call(headers=headers)
            if response.status_code >= 500 and not kragle_fault(case.path, response):
                failures.append(
                    f"{case.method} {case.formatted_path} answered {response.status_code}: "
                    f"{response.text[:300]}\n  {case.as_curl_command()}"
                )

        call()
    assert calls > 300, calls
    assert not failures, f"{len(failures)} requests answered 5xx:\n" + "\n".join(failures[:40])
