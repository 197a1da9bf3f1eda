"""Xplenty: integer ids, job and cluster status words, nested form parameters, and how
native tasks and triggers read as Xplenty packages and schedules."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from jobyard.domain.clusters import ClusterStatus
from jobyard.domain.errors import Invalid
from jobyard.domain.jobs import JobStatus
from jobyard.domain.schedules import Schedule, ScheduleKind, zone
from jobyard.domain.tasks import Argument

_MAX_ID = 2**63 - 1

JOB_WORDS = (
    "idle",
    "pending",
    "queued",
    "running",
    "completed",
    "failed",
    "pending_stoppage",
    "stopping",
    "stopped",
)

JOB_STATUS: Mapping[JobStatus, str] = {
    JobStatus.DRAFT: "idle",
    JobStatus.ONHOLD: "queued",  # waiting: for its cluster, an approval or input
    JobStatus.NEW: "pending",
    JobStatus.VOTING: "pending",
    JobStatus.RUNNING: "running",
    JobStatus.COMPLETE: "completed",
    JobStatus.QUORUM_FAILED: "failed",
    JobStatus.TIMED_OUT: "failed",
    JobStatus.ABORTED: "stopped",
}
# What a stop request answers: the agents are told to kill after it commits.
STOP_REQUESTED = "pending_stoppage"

# A list filter word -> the native statuses that may show as it. ``completed`` and
# ``failed`` share ``complete`` (a failed node run makes it ``failed``): the list keeps the
# jobs whose shown word is the one asked for (``job_status``), so a filter returns exactly it.
JOB_FILTER: Mapping[str, tuple[JobStatus, ...]] = {
    "idle": (JobStatus.DRAFT,),
    "pending": (JobStatus.NEW, JobStatus.VOTING),
    "queued": (JobStatus.ONHOLD,),
    "running": (JobStatus.RUNNING,),
    "completed": (JobStatus.COMPLETE,),
    "failed": (JobStatus.COMPLETE, JobStatus.QUORUM_FAILED, JobStatus.TIMED_OUT),
    "pending_stoppage": (),
    "stopping": (),
    "stopped": (JobStatus.ABORTED,),
}

CLUSTER_STATUS: Mapping[ClusterStatus, str] = {s: s.value for s in ClusterStatus}
CLUSTER_FILTER: Mapping[str, tuple[str, ...]] = {v: (k.value,) for k, v in CLUSTER_STATUS.items()}


# Packages are native tasks; every task can run, none is archived.
PACKAGE_STATUS = "active"

# Schedules are native triggers: enabled or not.
SCHEDULE_STATUS: Mapping[bool, str] = {True: "enabled", False: "disabled"}
SCHEDULE_FILTER: Mapping[str, bool] = {word: flag for flag, word in SCHEDULE_STATUS.items()}
# A schedule never uses a cluster of its own: its task runs on the nodes it targets.
REUSE_CLUSTER = "any"

# Interval units, largest first, in seconds. Xplenty's clients know minutes to months;
# "seconds" (a period that is no whole number of minutes) and "never" (one moment) are the
# words of Xplenty's older schedule documentation.
INTERVAL_UNITS: tuple[tuple[str, int], ...] = (
    ("weeks", 7 * 86400),
    ("days", 86400),
    ("hours", 3600),
    ("minutes", 60),
    ("seconds", 1),
)
MONTHS = "months"
NEVER = "never"


def job_status(status: JobStatus, run_failed: bool) -> str:
    if status is JobStatus.COMPLETE and run_failed:
        return "failed"
    return JOB_STATUS[status]


def parse_id(text: str) -> int | None:
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    value = int(text)
    return value if 0 < value <= _MAX_ID else None


_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


def nest(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Rails-style parameters (``job[variables][X]=v``) as nested dictionaries."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        match = _KEY.match(key)
        if match is None:
            raise Invalid(f"{key!r} is not a parameter name", key)
        parts = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        last = parts[-1]
        if last == "":
            raise Invalid(f"{key!r}: list parameters are not supported here", key)
        node[last] = value
    return out


def package_variables(arguments: Sequence[Argument]) -> dict[str, str | None]:
    """A task's declared arguments as a package's variables: name -> default (None: none)."""
    return {a.name: None if a.default is None else str(a.default) for a in arguments}


def _in_units(seconds: int) -> tuple[int, str]:
    for unit, size in INTERVAL_UNITS:
        if seconds % size == 0:
            return seconds // size, unit
    return seconds, "seconds"  # pragma: no cover - size 1 always divides


def _cron_gap(schedule: Schedule, a: dt.datetime, b: dt.datetime) -> tuple[int, str]:
    """Two consecutive fire times as an interval, on the wall clock of the schedule's zone
    (a daily cron stays "1 days" across a daylight-saving change)."""
    tz = zone(schedule.timezone)
    la, lb = a.astimezone(tz).replace(tzinfo=None), b.astimezone(tz).replace(tzinfo=None)
    if la.time() == lb.time():
        months = (lb.year - la.year) * 12 + lb.month - la.month
        if la.day == lb.day and months > 0:
            return months, MONTHS
        return _in_units((lb.date() - la.date()).days * 86400)
    return _in_units(max(int((lb - la).total_seconds()), 1))


def interval(schedule: Schedule, after: dt.datetime) -> tuple[int, str]:
    """``(interval_amount, interval_unit)`` of a native schedule.

    A period is exact. A cron expression has no interval: it reads as the gap between its
    next two fire times after ``after`` (a weekday cron reads "1 days" or "3 days" by day).
    A one-time schedule is ``(0, "never")``.
    """
    if schedule.kind is ScheduleKind.ONCE:
        return 0, NEVER
    if schedule.kind is ScheduleKind.PERIOD:
        assert schedule.period is not None
        return _in_units(schedule.period)
    times = schedule.next_times(2, after)
    if len(times) < 2:
        return 0, NEVER
    return _cron_gap(schedule, times[0], times[1])


def describe(schedule: Schedule) -> str:
    """The native timing in words (a trigger has no description of its own)."""
    if schedule.kind is ScheduleKind.CRON:
        return f"cron {schedule.cron} ({schedule.timezone})"
    if schedule.kind is ScheduleKind.PERIOD:
        return f"every {schedule.period} s"
    assert schedule.at is not None
    return "once at " + schedule.at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
