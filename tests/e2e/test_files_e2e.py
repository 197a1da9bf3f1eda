"""Input and output files on a real ``jobyard serve`` and ``jobyard agent``.

An input file is uploaded (streamed, sha256 kept), named by a job, downloaded by the
agent into the run's own fresh directory and checked; what the command writes there
comes back as the run's output files; a corrupt or missing input fails the run with its
reason; output over the per-run cap is refused with a reason; the run directory is gone
afterwards (or kept, the newest N, with ``--keep-runs``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.procs import Agent, Server, bootstrap_admin, wait_until

pytestmark = pytest.mark.e2e

TERMINAL = ("complete", "quorum_failed", "timed_out", "aborted")


@contextmanager
def _yard(server: Server, tmp_path: Path, *agent_args: str) -> Iterator[tuple[httpx.Client, Agent]]:
    org, email, token = bootstrap_admin(server)
    agent_token = server.admin("create-token", "--org", org, "--email", email, "--role", "agent")
    agent = Agent(
        tmp_path / "agent",
        server_url=server.url,
        token=agent_token["token"],
        node="f1",
        args=list(agent_args),
    )
    try:
        agent.start()
        with server.client(token) as http:
            yield http, agent
    finally:
        agent.close()


def _upload(http: httpx.Client, name: str, data: bytes) -> dict[str, Any]:
    r = http.post("/api/v1/files", params={"name": name}, content=data)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def _run(http: httpx.Client, **body: Any) -> dict[str, Any]:
    r = http.post("/api/v1/jobs", json={"nodes": ["f1"], **body})
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]

    def done() -> dict[str, Any] | None:
        job: dict[str, Any] = http.get(f"/api/v1/jobs/{job_id}").json()
        return job if job["status"] in TERMINAL else None

    return wait_until(done, timeout=30, interval=0.05, what=f"job {job_id} finished")


def _files(http: httpx.Client, job_id: int) -> dict[str, dict[str, Any]]:
    r = http.get(f"/api/v1/jobs/{job_id}/files")
    assert r.status_code == 200, r.text
    return {f["name"]: f for f in r.json()}


def _work(agent: Agent) -> list[Path]:
    root = agent.state_dir / "work"
    return sorted(root.iterdir()) if root.is_dir() else []


def _check_job_with_files(http: httpx.Client, agent: Agent) -> None:
    data = b"alpha\nbeta\n"
    first = _upload(http, "in.txt", data)
    assert first["size"] == len(data) and first["sha256"] == hashlib.sha256(data).hexdigest()
    # The second input comes as multipart, as browsers and most clients send files.
    r = http.post("/api/v1/files", files={"file": ("table.csv", b"a,b\n1,2\n", "text/csv")})
    assert r.status_code == 201, r.text
    second = r.json()
    assert second["name"] == "table.csv"
    assert http.get(f"/api/v1/files/{second['id']}").json()["sha256"] == second["sha256"]

    job = _run(
        http,
        command=(
            "test -f in.txt && test -f table.csv && pwd > where.txt"
            " && tr a-z A-Z < in.txt > out.txt && mkdir -p sub && wc -l < table.csv > sub/n.txt"
        ),
        input_files=[first["id"], second["id"]],
    )
    assert job["status"] == "complete", job
    assert [f["id"] for f in job["input_files"]] == [first["id"], second["id"]]
    files = _files(http, job["id"])
    # Inputs left as they were are not outputs; everything the command wrote is.
    assert set(files) == {"where.txt", "out.txt", "sub/n.txt"}, files
    out = files["out.txt"]
    assert out["node"] == "f1" and out["size"] == len(data)
    assert out["sha256"] == hashlib.sha256(b"ALPHA\nBETA\n").hexdigest()
    assert http.get(out["download_url"]).content == b"ALPHA\nBETA\n"
    assert http.get(files["sub/n.txt"]["download_url"]).content.strip() == b"2"
    # The command ran in a fresh directory under the agent's state dir, removed afterwards.
    where = http.get(files["where.txt"]["download_url"]).text.strip()
    assert Path(where).is_relative_to(agent.state_dir.resolve()), where
    wait_until(lambda: not Path(where).exists(), timeout=10, what="run directory removed")

    # ``outputs`` globs narrow what is kept.
    job = _run(http, command="echo 1 > a.csv; echo 2 > b.log", outputs=["*.csv"])
    assert job["status"] == "complete", job
    assert set(_files(http, job["id"])) == {"a.csv"}


def test_a_job_with_input_and_output_files_on_sqlite(server: Server, tmp_path: Path) -> None:
    with _yard(server, tmp_path) as (http, agent):
        _check_job_with_files(http, agent)


@pytest.mark.postgres
def test_a_job_with_input_and_output_files_on_postgresql(pg_server: Server, tmp_path: Path) -> None:
    with _yard(pg_server, tmp_path) as (http, agent):
        _check_job_with_files(http, agent)


def _stored_path(server: Server, data: bytes) -> Path:
    """The file holding an upload's bytes in the server's storage (found by content)."""
    for path in (server.data_dir / "files").rglob("*"):
        if path.is_file() and path.read_bytes() == data:
            return path
    raise AssertionError("upload not found in storage")


def test_a_corrupt_or_missing_input_fails_the_run_with_its_reason(
    server: Server, tmp_path: Path
) -> None:
    with _yard(server, tmp_path) as (http, _agent):
        corrupt = _upload(http, "model.dat", b"the original bytes")
        _stored_path(server, b"the original bytes").write_bytes(b"flipped bits")
        job = _run(http, command="cat model.dat", input_files=[corrupt["id"]])
        (run,) = job["node_runs"]
        assert run["status"] == "failed", job
        assert "model.dat" in run["reason"] and "corrupt" in run["reason"], run
        assert "sha256" in http.get(f"/api/v1/jobs/{job['id']}/output/f1/stderr").text

        missing = _upload(http, "gone.dat", b"soon gone")
        _stored_path(server, b"soon gone").unlink()
        job = _run(http, command="cat gone.dat", input_files=[missing["id"]])
        (run,) = job["node_runs"]
        assert run["status"] == "failed", job
        assert "gone.dat" in run["reason"] and "missing" in run["reason"], run


def test_output_over_the_per_run_cap_is_refused_with_a_reason(tmp_path: Path) -> None:
    env = {"JOBYARD_RUN_FILES_CAP": "1000"}
    with Server(tmp_path / "server", env=env) as server, _yard(server, tmp_path) as (http, _):
        job = _run(http, command="head -c 600 /dev/zero > a.bin; head -c 600 /dev/zero > b.bin")
        (run,) = job["node_runs"]
        assert run["status"] == "failed", job
        assert "1200 bytes" in run["reason"] and "1000" in run["reason"], run
        assert _files(http, job["id"]) == {}
        # Under the cap, the same kind of job keeps its files.
        job = _run(http, command="head -c 600 /dev/zero > a.bin")
        assert job["status"] == "complete" and set(_files(http, job["id"])) == {"a.bin"}


def test_keep_runs_keeps_the_newest_run_directories(server: Server, tmp_path: Path) -> None:
    with _yard(server, tmp_path, "--keep-runs", "1") as (http, agent):
        first = _run(http, command="echo one > mark.txt")
        second = _run(http, command="echo two > mark.txt")
        assert first["status"] == second["status"] == "complete"
        kept = _work(agent)
        assert [p.name for p in kept] == [f"{second['id']}-{second['attempt']}"], kept
        assert (kept[0] / "run" / "mark.txt").read_text() == "two\n"


def test_bad_file_requests_are_refused_and_change_nothing(server: Server, tmp_path: Path) -> None:
    with _yard(server, tmp_path) as (http, _agent):
        before = http.get("/api/v1/jobs").json()["count"]
        for bad in ([999999], ["x"], [True], "1", [0]):
            r = http.post(
                "/api/v1/jobs", json={"nodes": ["f1"], "command": "true", "input_files": bad}
            )
            assert r.status_code in (400, 422), (bad, r.status_code, r.text)
        for bad_out in (["/etc/*"], ["../x"], [""]):
            r = http.post(
                "/api/v1/jobs", json={"nodes": ["f1"], "command": "true", "outputs": bad_out}
            )
            assert r.status_code in (400, 422), (bad_out, r.status_code, r.text)
        assert http.get("/api/v1/jobs").json()["count"] == before
        r = http.post("/api/v1/files", content=b"no name")
        assert r.status_code in (400, 422), r.text
        r = http.post("/api/v1/files?name=..", content=b"x")
        assert r.status_code in (400, 422), r.text
        r = http.post(
            "/api/v1/files",
            content=b"--x\r\nbroken",
            headers={"Content-Type": "multipart/form-data; boundary=x"},
        )
        assert r.status_code in (400, 422), r.text
        assert http.get("/api/v1/files").json()["count"] == 0
        assert http.get("/api/v1/files/999999").status_code == 404
        assert http.get("/api/v1/files/abc").status_code in (400, 404, 422)
