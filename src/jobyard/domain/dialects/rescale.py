"""Rescale: short letter ids, status words and the status trail a job's history shows.

Rescale shows a job's life as a list of statuses, newest first; clients poll the
first one and stop on ``Completed``. Each native status a job passes through shows
as one or more Rescale statuses (``TRAIL``), and every finished job ends ``Completed``,
stopped ones after a ``Stopping`` that carries the reason.
"""

from __future__ import annotations

from collections.abc import Mapping

from jobyard.domain.jobs import JobStatus

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BASE = len(ALPHABET)
_MIN_LENGTH = 5
_MAX_ID = 2**63 - 1

PENDING = "Pending"
QUEUED = "Queued"
WAITING_FOR_QUEUE = "Waiting for Queue"
STARTED = "Started"
VALIDATED = "Validated"
EXECUTING = "Executing"
COMPLETED = "Completed"
STOPPING = "Stopping"

Step = tuple[str, str | None]  # (status word, statusReason)

TRAIL: Mapping[JobStatus, tuple[Step, ...]] = {
    JobStatus.DRAFT: ((PENDING, None),),
    JobStatus.ONHOLD: ((WAITING_FOR_QUEUE, "Waiting for approval or input"),),
    JobStatus.NEW: ((QUEUED, None),),
    JobStatus.VOTING: ((STARTED, None),),
    JobStatus.RUNNING: ((VALIDATED, None), (EXECUTING, None)),
    JobStatus.COMPLETE: ((COMPLETED, "Completed successfully"),),
    JobStatus.QUORUM_FAILED: (
        (STOPPING, "Not enough nodes accepted the job"),
        (COMPLETED, None),
    ),
    JobStatus.TIMED_OUT: ((STOPPING, "Walltime exceeded"), (COMPLETED, None)),
    JobStatus.ABORTED: ((STOPPING, "User Terminated"), (COMPLETED, None)),
}
# A job that completed with a failed node run stops first, as Rescale does.
FAILED_RUN_TRAIL: tuple[Step, ...] = ((STOPPING, "A run failed"), (COMPLETED, None))

# jobStatus / clusterStatusDisplay decorations: word -> (labelClass, useLabel).
LABELS: Mapping[str, tuple[str, bool]] = {
    PENDING: ("", False),
    QUEUED: ("label-info", True),
    WAITING_FOR_QUEUE: ("label-info", True),
    STARTED: ("label-success", True),
    VALIDATED: ("label-success", True),
    EXECUTING: ("label-success", True),
    STOPPING: ("label-warning", True),
    COMPLETED: ("", False),
    "Not Started": ("", False),
    "Starting": ("label-info", True),
    "Stopped": ("", False),
}

CLUSTER_TRAIL: Mapping[JobStatus, tuple[str, ...]] = {
    JobStatus.DRAFT: ("Not Started",),
    JobStatus.ONHOLD: (),
    JobStatus.NEW: (),
    JobStatus.VOTING: ("Starting",),
    JobStatus.RUNNING: ("Started",),
    JobStatus.COMPLETE: ("Stopping", "Stopped"),
    JobStatus.QUORUM_FAILED: ("Stopping", "Stopped"),
    JobStatus.TIMED_OUT: ("Stopping", "Stopped"),
    JobStatus.ABORTED: ("Stopping", "Stopped"),
}

OUTPUT_FILE_TYPE = 5


def trail(status: JobStatus, run_failed: bool = False) -> tuple[Step, ...]:
    if status is JobStatus.COMPLETE and run_failed:
        return FAILED_RUN_TRAIL
    return TRAIL[status]


def current(status: JobStatus, run_failed: bool = False) -> str:
    return trail(status, run_failed)[-1][0]


def cluster_current(status: JobStatus) -> str:
    words = CLUSTER_TRAIL[status]
    return words[-1] if words else "Not Started"


def render_id(value: int) -> str:
    out = []
    while value:
        value, digit = divmod(value, _BASE)
        out.append(ALPHABET[digit])
    return "".join(reversed(out)).rjust(_MIN_LENGTH, ALPHABET[0])


def parse_id(text: str) -> int | None:
    """The native id of a Rescale id, or None when the text is not one of ours."""
    if not _MIN_LENGTH <= len(text) <= 12 or any(c not in ALPHABET for c in text):
        return None
    value = 0
    for c in text:
        value = value * _BASE + ALPHABET.index(c)
    if not 0 < value <= _MAX_ID or render_id(value) != text:
        return None
    return value
