"""The job timeline: each node run's vote, wait and run phases over time, drawn from
the event log as a Gantt-like chart.

For one node run::

    created ──vote──▶ ready ──wait──▶ running ──run──▶ result
       (new)                                            ▲ marker, coloured by the result

A phase still under way stretches to "now" and is drawn as open. Pure code: it takes
the job, its runs and its events and returns geometry for the template.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from jobyard.domain.jobs import NodeRunStatus
from jobyard.domain.records import Event, Job, NodeRun

MAX_ROWS = 200
_NICE_STEPS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)

# Chart geometry in SVG user units.
LABEL_WIDTH = 170.0
CHART_WIDTH = 800.0
ROW_HEIGHT = 24.0
AXIS_HEIGHT = 22.0


@dataclass(frozen=True)
class Segment:
    phase: str  # vote | wait | run
    x: float
    width: float
    seconds: float
    open: bool


@dataclass(frozen=True)
class Row:
    node: str
    status: str
    y: float
    segments: list[Segment]
    marker_x: float | None


@dataclass(frozen=True)
class Tick:
    x: float
    label: str


@dataclass(frozen=True)
class Timeline:
    rows: list[Row]
    ticks: list[Tick]
    span: float
    hidden: int  # rows left out beyond MAX_ROWS
    width: float
    height: float
    label_width: float = LABEL_WIDTH
    chart_width: float = CHART_WIDTH
    row_height: float = ROW_HEIGHT
    axis_height: float = AXIS_HEIGHT

    @property
    def empty(self) -> bool:
        return not self.rows


def _phases(
    run: NodeRun, moves: Sequence[Event], now: dt.datetime
) -> tuple[list[tuple[str, dt.datetime, dt.datetime, bool]], dt.datetime | None]:
    """The (phase, start, end, open) list of one run and the time of its result."""
    out: list[tuple[str, dt.datetime, dt.datetime, bool]] = []
    phase, since = "vote", run.created_at
    ended: dt.datetime | None = None
    for e in moves:
        target = e.to_status
        if target == NodeRunStatus.READY.value:
            out.append((phase, since, e.created_at, False))
            phase, since = "wait", e.created_at
        elif target == NodeRunStatus.RUNNING.value:
            out.append((phase, since, e.created_at, False))
            phase, since = "run", e.created_at
        elif target is not None and NodeRunStatus(target).terminal:
            out.append((phase, since, e.created_at, False))
            ended = e.created_at
            break
    if ended is None:
        if run.status.terminal:
            # The result is known but its event is not (older log, or pruned): use the row.
            ended = run.finished_at or run.updated_at
            out.append((phase, since, ended, False))
        else:
            out.append((phase, since, now, True))
    return out, ended


def _step(span: float) -> float:
    for step in _NICE_STEPS:
        if span / step <= 6:
            return step
    return _NICE_STEPS[-1] * max(1, round(span / 6 / _NICE_STEPS[-1]))


def _label(offset: float, step: float) -> str:
    if offset == 0:
        return "0"
    if step < 1:
        return f"+{offset:.1f} s"
    if step < 60 or offset < 60:
        return f"+{offset:.0f} s"
    if step < 3600:
        return f"+{offset / 60:.0f} min"
    return f"+{offset / 3600:.0f} h"


def build(job: Job, runs: Sequence[NodeRun], events: Iterable[Event], now: dt.datetime) -> Timeline:
    moves: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        if e.kind == "node_run" and e.node_name is not None and e.type == "node_run.status":
            moves[e.node_name].append(e)
    shown = list(runs)[:MAX_ROWS]
    per_run = []
    for run in shown:
        # Runs of an earlier attempt leave events too: keep those of the current run.
        own = [e for e in moves.get(run.node_name, []) if e.created_at >= run.created_at]
        own.sort(key=lambda e: e.id)
        per_run.append((run, *_phases(run, own, now)))
    if not per_run:
        return Timeline([], [], 0.0, max(0, len(runs) - MAX_ROWS), 0.0, 0.0)
    start = min(min(p[1] for p in phases) for _, phases, _ in per_run)
    end = max(max(p[2] for p in phases) for _, phases, _ in per_run)
    span = max((end - start).total_seconds(), 0.001)
    scale = CHART_WIDTH / span

    def x_of(t: dt.datetime) -> float:
        return LABEL_WIDTH + (t - start).total_seconds() * scale

    rows = []
    for i, (run, phases, ended) in enumerate(per_run):
        segments = []
        for phase, since, until, is_open in phases:
            seconds = max(0.0, (until - since).total_seconds())
            segments.append(
                Segment(
                    phase,
                    round(x_of(since), 2),
                    round(max(seconds * scale, 1.5), 2),
                    seconds,
                    is_open,
                )
            )
        rows.append(
            Row(
                run.node_name,
                run.status.value,
                AXIS_HEIGHT + i * ROW_HEIGHT,
                segments,
                round(x_of(ended), 2) if ended is not None else None,
            )
        )
    step = _step(span)
    ticks = []
    offset = 0.0
    while offset <= span + 1e-9:
        ticks.append(Tick(round(LABEL_WIDTH + offset * scale, 2), _label(offset, step)))
        offset += step
    return Timeline(
        rows,
        ticks,
        span,
        max(0, len(runs) - MAX_ROWS),
        LABEL_WIDTH + CHART_WIDTH + 10,
        AXIS_HEIGHT + len(rows) * ROW_HEIGHT + 4,
    )
