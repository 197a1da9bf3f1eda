"""A job that prints 300,000 lines, through real ``jobyard serve`` and ``jobyard agent``
processes on SQLite and PostgreSQL: each stream keeps its head and its tail with a marker
between, the final line on stderr survives the flood on stdout, and the job page stays
small (its last bytes of each stream, the rest one click away)."""

from __future__ import annotations

import html
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.procs import wait_until
from tests.web.dashboard import csrf_of
from tests.web.yard import EMAIL, PASSWORD, Yard, running_yard

pytestmark = pytest.mark.e2e

LINES = 300_000
FLOOD = (
    "import sys\n"
    f"sys.stdout.write(''.join(f'line {{i}} of the flood\\n' for i in range({LINES})))\n"
    "sys.stdout.flush()\n"
    "sys.stderr.write('fatal: the <last> error & its reason\\n')\n"
    "sys.exit(3)\n"
)
PAGE_LIMIT = 300 * 1024  # bytes of HTML: a few streams' last 64 KiB, never the whole output


@pytest.fixture(params=["sqlite", "postgresql"])
def yard(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Yard]:
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    with running_yard(tmp_path, agents=("flood",), database_url=url) as y:
        yield y


def _finished(api: httpx.Client, job_id: int) -> dict[str, Any] | None:
    job: dict[str, Any] = api.get(f"/api/v1/jobs/{job_id}").json()
    return job if job["status"] not in ("new", "voting", "running") else None


def test_a_flood_keeps_head_tail_and_the_last_error(yard: Yard) -> None:
    with yard.api() as api:
        made = api.post("/api/v1/jobs", json={"argv": ["python3", "-c", FLOOD], "nodes": ["flood"]})
        assert made.status_code == 201, made.text
        job_id = made.json()["id"]
        job = wait_until(lambda: _finished(api, job_id), timeout=120, what="the flood to end")
        assert job["node_runs"][0]["exit_code"] == 3
        assert job["node_runs"][0]["truncated"] is True
        out = api.get(f"/api/v1/jobs/{job_id}/output/flood/stdout").text
        err = api.get(f"/api/v1/jobs/{job_id}/output/flood/stderr").text

    assert err == "fatal: the <last> error & its reason\n"
    assert out.startswith("line 0 of the flood\nline 1 of the flood\n")
    assert out.endswith(f"line {LINES - 1} of the flood\n")
    assert out.count("[jobyard: ") == 1 and " of output dropped here;" in out
    # What is kept: the head and the tail of stdout (1 MiB by default, and at most one
    # 64 KiB tail chunk more), not the 7.3 MB printed.
    assert len(out.encode()) < 1024 * 1024 + 64 * 1024 + 200

    with httpx.Client(base_url=yard.url, timeout=30.0) as browser:
        form = browser.get("/login")
        signed = browser.post(
            "/login",
            data={"email": EMAIL, "password": PASSWORD, "csrf_token": csrf_of(form.text)},
        )
        assert signed.status_code == 303, signed.text
        page = browser.get(f"/jobs/{job_id}")
    assert page.status_code == 200
    assert len(page.content) < PAGE_LIMIT, len(page.content)
    assert html.escape("fatal: the <last> error & its reason", quote=False) in page.text
    assert f"line {LINES - 1} of the flood" in page.text
    assert "earlier output is not shown here" in page.text
    assert f'href="/api/v1/jobs/{job_id}/output/flood/stdout"' in page.text
