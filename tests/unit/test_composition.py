"""The server is put together in one place: the observers every ``Services`` runs and the
loops the app starts do not depend on which modules happen to be imported."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from jobyard.api.app import create_app
from jobyard.dispatch.server import server_loops
from jobyard.service.context import Services
from jobyard.service.observers import standard_observers
from jobyard.settings import Settings
from jobyard.store import Database

# Run in a fresh interpreter that imports only the use case and the CLI's admin helper:
# a job created there must be watched by its creator (the notification observer ran).
SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from jobyard.cli.admin import run_with_services
    from jobyard.domain.accounts import Role
    from jobyard.domain.jobspec import JobSpec
    from jobyard.domain.targets import Target
    from jobyard.service import accounts, jobs

    assert "jobyard.service.observers" not in sys.modules
    assert "jobyard.api.app" not in sys.modules

    async def work(svc):
        await accounts.create_org(svc, "solo")
        await accounts.create_user(svc, "solo", "s@example.com", Role.ADMIN)
        issued = await accounts.create_token(svc, "solo", "s@example.com")
        who = await accounts.authenticate(svc, issued.secret)
        spec = JobSpec(target=Target(nodes=("n1",)), command="true")
        view = await jobs.create_job(svc, who, spec, draft=True)
        async with svc.db.read() as tx:
            watchers = await tx.notify.watchers.of("job", view.job.id)
        return [w.user_id for w in watchers] == [who.user_id], [
            o.one.__qualname__ for o in svc.observers
        ]

    watched, names = run_with_services(sys.argv[1], None, work)
    print(watched, ",".join(names))
    """
)


def test_the_admin_path_observes_as_the_server_does(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    names = ",".join(o.one.__qualname__ for o in standard_observers())
    assert out.stdout.split() == ["True", names]


def test_a_bare_services_and_the_app_run_the_same_observers(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)

    bare = Services(db=Database(settings.db_url), settings=settings)
    app = create_app(services=bare, run_loops=False)
    served: Services = app.state.services
    assert served.observers == bare.observers == standard_observers()
    assert [o.one.__qualname__ for o in bare.observers] == [
        "notify_on_event",
        "on_job_finished",
        "on_step_finished",
    ]
    # The loops start in this order (and stop in reverse).
    assert [f.__qualname__ for f in server_loops()] == [
        "engine_loop",
        "relay_loop",
        "retention_loop",
        "scheduler_loop",
    ]


def test_dialect_error_shapes_are_composed_by_the_app(tmp_path: Path) -> None:
    import asyncio

    import httpx

    from jobyard.api.app import DIALECT_ERRORS

    settings = Settings(data_dir=tmp_path)
    composed = create_app(settings, run_loops=False)
    assert composed.state.error_renderers == DIALECT_ERRORS
    assert [prefix for prefix, _ in DIALECT_ERRORS] == [
        "/compat/chef/",
        "/compat/rescale/",
        "/compat/xplenty/",
        "/compat/theeye/",
        "/compat/kragle/",
    ]
    # Nothing is registered by importing a dialect: an app made without them answers a
    # dialect's path as problem+json, the composed one in the platform's shape (Chef:
    # {"error": ...}).
    bare = create_app(settings, run_loops=False, dialect_errors=())

    async def get(app: object) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get("/compat/chef/organizations/x/pushy/jobs/1")

    plain, shaped = asyncio.run(get(bare)), asyncio.run(get(composed))
    assert plain.headers["content-type"].startswith("application/problem+json")
    assert not shaped.headers["content-type"].startswith("application/problem+json")
    assert plain.status_code == shaped.status_code == 401
    assert list(shaped.json()) == ["error"]


def test_each_services_has_its_own_runtime(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    one = Services(db=Database(settings.db_url), settings=settings)
    two = Services(db=Database(settings.db_url), settings=settings)
    one.runtime.subscriptions[1] = (0.0, [])
    assert two.runtime.subscriptions == {}
    assert one.runtime.engine is None and one.runtime.verify_gate is not two.runtime.verify_gate
