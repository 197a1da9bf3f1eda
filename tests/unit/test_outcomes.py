"""The outcome rule (domain.outcomes) and the surfaces that take their words from it."""

from __future__ import annotations

import datetime as dt

import pytest
from rich.console import Console

from jobyard.cli import follow
from jobyard.domain.dialects import rescale, theeye, xplenty
from jobyard.domain.jobs import RUN_TERMINAL, JobStatus, NodeRunStatus
from jobyard.domain.outcomes import (
    JOB_OUTCOME,
    RUN_FAILED,
    RUN_OUTCOME,
    Outcome,
    Tone,
    job_outcome,
    run_failed,
    tone_of,
)
from jobyard.domain.records import Job, NodeRun
from jobyard.service.holds import ended_failed
from jobyard.web.rendering import tone

R = NodeRunStatus


def test_every_status_has_an_outcome() -> None:
    assert set(RUN_OUTCOME) == set(NodeRunStatus)
    assert set(JOB_OUTCOME) == set(JobStatus)
    assert {R.FAILED, R.CRASHED, R.TIMED_OUT, R.ABORTED} == RUN_FAILED
    assert RUN_FAILED <= RUN_TERMINAL


@pytest.mark.parametrize(
    ("status", "runs", "outcome", "label", "failure"),
    [
        ("complete", [R.SUCCEEDED] * 3, Outcome.SUCCEEDED, "complete · 3 of 3 succeeded", False),
        ("complete", [R.FAILED] * 3, Outcome.FAILED, "complete · 3 of 3 failed", True),
        ("complete", [R.SUCCEEDED, R.CRASHED], Outcome.PARTIALLY_FAILED, None, True),
        ("complete", [R.SUCCEEDED, R.NACKED], Outcome.SUCCEEDED, None, False),
        ("complete", [R.TIMED_OUT, R.UNAVAILABLE], Outcome.FAILED, None, True),
        ("quorum_failed", [R.NACKED], Outcome.QUORUM_FAILED, "quorum failed", True),
        ("timed_out", [R.TIMED_OUT], Outcome.TIMED_OUT, "timed out", True),
        ("aborted", [R.ABORTED], Outcome.STOPPED, "aborted", False),
        ("running", [R.RUNNING], Outcome.RUNNING, "running", False),
        ("onhold", [], Outcome.WAITING, "onhold", False),
    ],
)
def test_job_outcome(
    status: str, runs: list[NodeRunStatus], outcome: Outcome, label: str | None, failure: bool
) -> None:
    got = job_outcome(status, runs)
    assert got.outcome is outcome
    assert got.is_failure is failure
    if label is not None:
        assert got.label == label
    # A mapping of counts says the same as the list.
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.value] = counts.get(r.value, 0) + 1
    assert job_outcome(status, counts) == got


def test_tones_come_from_the_outcome() -> None:
    assert job_outcome("complete", [R.FAILED] * 3).tone is Tone.BAD
    assert job_outcome("complete", [R.SUCCEEDED]).tone is Tone.OK
    assert tone_of("crashed") is Tone.BAD and tone_of("quorum_failed") is Tone.BAD
    assert tone_of("nacked") is Tone.WARN and tone_of("running") is Tone.LIVE
    # The dashboard's tone filter reads the same table, and keeps its own words for others.
    assert tone("crashed") == "bad" and tone("partially_failed") == "bad"
    assert tone("available") == "ok" and tone("whatever") == "idle"


def _job(status: JobStatus) -> Job:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return Job(
        id=1, org_id=1, name=None, description="", command="x", argv=None, target={},
        quorum="100%", run_timeout=None, env={}, dir=None, capture_output=True, status=status,
        attempt=1, meta={}, kind="script", state=None, result=None, arguments=None,
        task_id=None, trigger_id=None, cluster_id=None, created_by=None, created_at=now,
        updated_at=now, submitted_at=None, started_at=None, finished_at=None, deadline=None,
    )  # fmt: skip


def _run(status: NodeRunStatus) -> NodeRun:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return NodeRun(
        id=1, job_id=1, org_id=1, node_name="n1", status=status, attempt=1, exit_code=None,
        reason=None, truncated=False, created_at=now, updated_at=now,
        started_at=None, finished_at=None,
    )  # fmt: skip


def test_retry_policy_reads_the_outcome() -> None:
    assert ended_failed(_job(JobStatus.COMPLETE), [_run(R.SUCCEEDED), _run(R.CRASHED)])
    assert ended_failed(_job(JobStatus.QUORUM_FAILED), [])
    assert not ended_failed(_job(JobStatus.COMPLETE), [_run(R.SUCCEEDED), _run(R.NACKED)])
    assert not ended_failed(_job(JobStatus.ABORTED), [_run(R.ABORTED)])


def test_dialect_failure_words_read_the_outcome() -> None:
    bad, good = [R.SUCCEEDED, R.CRASHED], [R.SUCCEEDED, R.UNAVAILABLE]
    assert run_failed(bad) and not run_failed(good)
    assert xplenty.job_status(JobStatus.COMPLETE, run_failed(bad)) == "failed"
    assert xplenty.job_status(JobStatus.COMPLETE, run_failed(good)) == "completed"
    assert theeye.state(JobStatus.COMPLETE, None, bad) == theeye.FAILURE
    assert theeye.state(JobStatus.COMPLETE, None, good) == theeye.SUCCESS
    assert rescale.trail(JobStatus.COMPLETE, run_failed(bad)) == rescale.FAILED_RUN_TRAIL
    assert rescale.trail(JobStatus.COMPLETE, run_failed(good)) != rescale.FAILED_RUN_TRAIL


def test_cli_colours_the_outcome() -> None:
    job = {"id": 7, "status": "complete", "outcome": "failed", "node_runs": []}
    job["outcome_label"] = job_outcome("complete", [R.FAILED] * 3).label
    console = Console(record=True, force_terminal=True, color_system="truecolor", width=80)
    console.print(follow.job_status(job))
    text = console.export_text(styles=True, clear=False)
    assert "complete · 3 of 3 failed" in console.export_text()
    assert "\x1b[31m" in text  # red
    ok = {
        "status": "complete",
        "outcome": "succeeded",
        "outcome_label": "complete · 1 of 1 succeeded",
    }
    assert follow.job_status(ok).startswith("[green]")
