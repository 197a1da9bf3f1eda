"""What secrets cost on the hot paths, per operation, for jobs with and without secrets.

    python -m bench.secrets [--n 20000]

Measures in-process (no server): the output ingest mask (``service.secrets.mask_output``)
of a 200-character chunk, the commit frame a node receives (``rounds.commit_message``:
secrets opened), and the JSON of a native job as the API sends it (``render.job`` then
``responses.dumps``, whose last-line check searches the bytes for a sealed value).
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from jobyard.api import render
from jobyard.api.responses import dumps
from jobyard.domain.jobs import JobStatus
from jobyard.domain.records import Job
from jobyard.domain.secrets import hide_sealed
from jobyard.service.context import Services
from jobyard.service.jobs import JobView
from jobyard.service.rounds import commit_message
from jobyard.service.secrets import mask_output
from jobyard.settings import Settings
from jobyard.store import Database


def _job(env: dict[str, str]) -> Job:
    now = dt.datetime.now(dt.UTC)
    fields = {f: None for f in Job.__dataclass_fields__}
    fields.update(
        id=1, org_id=1, name="bench", description="", command="./run.sh", argv=None,
        target={"nodes": ["n1"]}, quorum="100%", run_timeout=60, env=env, dir=None,
        capture_output=True, status=JobStatus.RUNNING, attempt=1, meta={}, kind="script",
        created_at=now, updated_at=now,
    )  # fmt: skip
    return Job(**fields)


def _per_op(n: int, work: Callable[[], object]) -> float:
    start = time.perf_counter()
    for _ in range(n):
        work()
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20000)
    n = parser.parse_args().n
    data = Path(tempfile.mkdtemp())
    svc = Services(db=Database(f"sqlite:///{data / 'db'}"), settings=Settings(data_dir=data))
    plain = _job({"STAGE": "prod", "REGION": "eu"})
    secret = _job({"STAGE": "prod", "DB_PASSWORD": svc.secrets.seal("s3cr3t-value")})
    chunk = ("line of ordinary output, nothing secret in it " * 5)[:200]
    print(f"{'operation':44} {'no secret':>12} {'one secret':>12}  (µs per operation)")
    for label, make in (
        ("mask one output chunk (200 chars)", lambda j: lambda: mask_output(svc.secrets, j, chunk)),
        ("commit frame for a node", lambda j: lambda: commit_message(svc, j, "n1")),
        (
            "GET job JSON (render + dumps)",
            lambda j: lambda: dumps(render.job(JobView(j, []), "http://x")),
        ),
    ):
        a, b = _per_op(n, make(plain)), _per_op(n, make(secret))
        print(f"{label:44} {a:12.2f} {b:12.2f}")
    body = dumps(render.job(JobView(plain, []), "http://x"))
    search = _per_op(n * 10, lambda: hide_sealed(body))
    print(f"{'  of which the sealed-value search of the JSON':44} {search:12.2f}")


if __name__ == "__main__":
    main()
