"""The public Rescale client (PyPI ``rescalepy``) at its defaults, on a real ``jobyard serve``
and ``jobyard agent``: it looks up the software and hardware catalogues, uploads an input
file, creates and submits a job, waits for it, lists and downloads the output files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.procs import Agent, Server, bootstrap_admin, wait_until

pytestmark = pytest.mark.e2e
client_module = pytest.importorskip("rescalepy.client")


@pytest.fixture
def rescale(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    org, email, token = bootstrap_admin(server)
    agent_token = server.admin("create-token", "--org", org, "--email", email, "--role", "agent")
    agent = Agent(tmp_path / "agent", server_url=server.url, token=agent_token["token"], node="r1")
    # The client's base URL is a module constant: point it at jobyard, nothing else changes.
    monkeypatch.setattr(client_module, "ENDPOINT", f"{server.url}/compat/rescale/api/v2/")
    try:
        agent.start()
        yield client_module.Client(api_token=token)
    finally:
        agent.close()


def _wait_completed(client: Any, job_id: str) -> None:
    wait_until(
        lambda: client.get_job_status(job_id)[0]["status"] == "Completed",
        timeout=30,
        interval=0.1,
        what=f"Rescale job {job_id} completed",
    )
    client.wait_for_job(job_id, interval=0)  # the client's own wait agrees, at once


def test_rescalepy_at_its_defaults_runs_a_job_with_files(rescale: Any, tmp_path: Path) -> None:
    client = rescale
    data = tmp_path / "input.txt"
    data.write_text("one\ntwo\nthree\n")
    assert client.get_latest_software_version("user_included") == "0"
    assert client.get_cheapest_core() == "any"

    # create_job with no version (looked up in analyses/) and the default core type, uploading
    # the input file on the way (files/contents/).
    job_id = client.create_job(
        name="rescalepy e2e",
        software_code="user_included",
        input_files=[data],
        command="wc -l < input.txt > lines.txt && tr a-z A-Z < input.txt > upper.txt",
    )
    details = client.get_job_details(job_id)
    analysis = details["jobanalyses"][0]
    assert [f["name"] for f in analysis["inputFiles"]] == ["input.txt"]
    assert details["jobStatus"]["content"] == "Pending"
    assert client.submit_job(job_id) is True
    _wait_completed(client, job_id)
    statuses = client.get_job_status(job_id)
    assert statuses[0]["status"] == "Completed"
    assert "Stopping" not in [s["status"] for s in statuses], statuses

    files = client.list_job_results_files(job_id)
    assert sorted(f["name"] for f in files) == ["lines.txt", "upper.txt"]
    assert {f["typeId"] for f in files} == {5}
    out = tmp_path / "results"
    client.download_all_results(job_id, out)
    assert (out / "r1" / "lines.txt").read_text().strip() == "3"
    assert (out / "r1" / "upper.txt").read_text() == "ONE\nTWO\nTHREE\n"
    runs = client.list_job_results(job_id)
    assert [r["name"] for r in runs] == ["r1"]

    # An uploaded file reused by id, on the cheapest core type.
    uploaded = client.upload(data)
    again = client.create_job(
        name="reuse",
        software_code="user_included",
        input_files=[uploaded],
        command="cat input.txt input.txt > twice.txt",
        core_type=None,
    )
    assert client.get_job_details(again)["jobanalyses"][0]["hardware"]["coreType"] == "any"
    client.submit_job(again)
    _wait_completed(client, again)
    (twice,) = client.list_job_results_files(again)
    client.download(twice["id"], tmp_path / "twice.txt")
    assert (tmp_path / "twice.txt").read_text() == "one\ntwo\nthree\n" * 2
