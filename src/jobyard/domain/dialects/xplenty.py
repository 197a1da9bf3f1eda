"""Xplenty: integer ids, job and cluster status words, nested form parameters."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from jobyard.domain.clusters import ClusterStatus
from jobyard.domain.errors import Invalid
from jobyard.domain.jobs import JobStatus

_MAX_ID = 2**63 - 1

JOB_WORDS = (
    "idle",
    "pending",
    "running",
    "completed",
    "failed",
    "pending_stoppage",
    "stopping",
    "stopped",
)

JOB_STATUS: Mapping[JobStatus, str] = {
    JobStatus.DRAFT: "idle",
    JobStatus.ONHOLD: "pending",
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

# A list filter word -> the native statuses it selects. ``failed`` also covers
# complete jobs with a failed node run, which only the rendering can tell apart.
JOB_FILTER: Mapping[str, tuple[JobStatus, ...]] = {
    "idle": (JobStatus.DRAFT,),
    "pending": (JobStatus.ONHOLD, JobStatus.NEW, JobStatus.VOTING),
    "running": (JobStatus.RUNNING,),
    "completed": (JobStatus.COMPLETE,),
    "failed": (JobStatus.QUORUM_FAILED, JobStatus.TIMED_OUT),
    "pending_stoppage": (),
    "stopping": (),
    "stopped": (JobStatus.ABORTED,),
}

CLUSTER_STATUS: Mapping[ClusterStatus, str] = {s: s.value for s in ClusterStatus}
CLUSTER_FILTER: Mapping[str, tuple[str, ...]] = {v: (k.value,) for k, v in CLUSTER_STATUS.items()}


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
