"""The job timeline's geometry, from node runs and their events (pure)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from jobyard.domain.jobs import JobStatus, NodeRunStatus
from jobyard.domain.records import Event, Job, NodeRun
from jobyard.web import timeline

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def job(status: JobStatus = JobStatus.RUNNING) -> Job:
    values: dict[str, Any] = dict.fromkeys(Job.__dataclass_fields__)
    values.update(
        id=1, org_id=1, status=status, target={"nodes": ["a", "b"]}, created_at=T0, updated_at=T0
    )
    return Job(**values)


def run(node: str, status: NodeRunStatus, finished: float | None = None) -> NodeRun:
    return NodeRun(
        id=hash(node) % 1000,
        job_id=1,
        org_id=1,
        node_name=node,
        status=status,
        attempt=1,
        exit_code=None,
        reason=None,
        truncated=False,
        created_at=T0,
        updated_at=at(finished or 0),
        started_at=None,
        finished_at=at(finished) if finished is not None else None,
    )


def moved(event_id: int, node: str, to: str, seconds: float) -> Event:
    return Event(
        id=event_id,
        org_id=1,
        kind="node_run",
        subject_id=1,
        job_id=1,
        node_name=node,
        type="node_run.status",
        from_status=None,
        to_status=to,
        actor=None,
        reason=None,
        data=None,
        created_at=at(seconds),
    )


def test_phases_follow_the_events_and_open_phases_reach_now() -> None:
    runs = [run("a", NodeRunStatus.SUCCEEDED, 10), run("b", NodeRunStatus.RUNNING)]
    events = [
        moved(1, "a", "ready", 1),
        moved(2, "b", "ready", 2),
        moved(3, "a", "running", 2),
        moved(4, "b", "running", 2),
        moved(5, "a", "succeeded", 10),
    ]
    drawn = timeline.build(job(), runs, events, now=at(20))
    a, b = drawn.rows
    assert [s.phase for s in a.segments] == ["vote", "wait", "run"]
    assert [round(s.seconds) for s in a.segments] == [1, 1, 8]
    assert not any(s.open for s in a.segments)
    assert a.marker_x is not None and a.status == "succeeded"
    assert [s.phase for s in b.segments] == ["vote", "wait", "run"]
    assert b.segments[-1].open and b.marker_x is None
    # The chart spans the first creation to now: b's open run ends at the right edge.
    right = timeline.LABEL_WIDTH + timeline.CHART_WIDTH
    assert abs(b.segments[-1].x + b.segments[-1].width - right) < 0.01
    assert drawn.ticks[0].label == "0" and drawn.ticks[-1].x <= right + 0.01
    assert drawn.span == 20


def test_a_result_without_its_event_uses_the_run_row() -> None:
    drawn = timeline.build(job(JobStatus.COMPLETE), [run("a", NodeRunStatus.NACKED, 3)], [], at(9))
    (row,) = drawn.rows
    assert [s.phase for s in row.segments] == ["vote"]
    assert row.marker_x is not None and row.status == "nacked"


def test_large_jobs_draw_the_first_rows_and_count_the_rest() -> None:
    runs = [run(f"n{i:04d}", NodeRunStatus.NEW) for i in range(timeline.MAX_ROWS + 5)]
    drawn = timeline.build(job(), runs, [], at(1))
    assert len(drawn.rows) == timeline.MAX_ROWS and drawn.hidden == 5
    assert timeline.build(job(), [], [], at(1)).empty
