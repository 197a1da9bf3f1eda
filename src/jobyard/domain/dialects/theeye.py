"""TheEye: 24-hex-digit ids, the lifecycle and state words, job types, credentials.

A TheEye job has a *lifecycle* (where it is in its life) and a *state* (how it went).
The lifecycle comes from the native job status, refined by what an ``onhold`` job
waits for and by whether an aborted or timed-out job had started::

    native              lifecycle    why
    draft               onhold       waits for a person (to submit it)
    onhold (approval,   onhold       waits for a person
      input, none)
    onhold (queue,      locked       waits for a free slot or its retry time
      retry)
    new, voting         ready        no agent has taken it yet
    running             assigned     agents run it
    complete            finished     every node reported
    quorum_failed       terminated   ended without a normal finish: no node took it
    timed_out, started  terminated   killed at its run timeout (TheEye's own timeout)
    timed_out, waiting  expired      an onhold job nobody answered in time
    aborted, started    terminated   stopped while agents ran it
    aborted, waiting    canceled     stopped before any agent ran it

``syncing`` and ``completed`` (TheEye workflows) have no native counterpart: jobyard
never shows them, and a filter on them matches nothing.

The state is open-ended (a script may end with its own word). The word a result gave is
stored on the job (``Job.state``); without one it comes from the status and node runs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from jobyard.domain.accounts import Role
from jobyard.domain.jobs import JobStatus, NodeRunStatus
from jobyard.domain.outcomes import run_failed

_HEX_ID = re.compile(r"^[0-9a-fA-F]{24}\Z")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
_MAX_ID = 2**63 - 1

# Lifecycle words (TheEye constants/lifecycle.js).
READY = "ready"
ASSIGNED = "assigned"
ONHOLD = "onhold"
SYNCING = "syncing"
LOCKED = "locked"
FINISHED = "finished"
TERMINATED = "terminated"
CANCELED = "canceled"
EXPIRED = "expired"
COMPLETED = "completed"
IN_PROGRESS_LIFECYCLES = frozenset({READY, ASSIGNED, ONHOLD, SYNCING, LOCKED})
DONE_LIFECYCLES = frozenset({FINISHED, TERMINATED, CANCELED, EXPIRED, COMPLETED})

# State words (TheEye constants/states.js, plus the timeout word its dispatcher sets).
SUCCESS = "success"
FAILURE = "failure"
ERROR = "error"
STATE_CANCELED = "canceled"
IN_PROGRESS = "in_progress"
TIMEOUT = "timeout"

# Qualifiers of a native status in the lifecycle table.
STARTED = "started"  # the job reached running before it ended
WAITING = "waiting"  # it did not

LifecycleKey = tuple[JobStatus, str | None]

# The one lifecycle table: (native status, qualifier) -> TheEye lifecycle word.
# The qualifier of ``onhold`` is what the job waits for (a task-run hold word, or None);
# of ``aborted`` and ``timed_out`` it is STARTED or WAITING; of the others it is None.
LIFECYCLE: Mapping[LifecycleKey, str] = {
    (JobStatus.DRAFT, None): ONHOLD,
    (JobStatus.ONHOLD, None): ONHOLD,
    (JobStatus.ONHOLD, "approval"): ONHOLD,
    (JobStatus.ONHOLD, "input"): ONHOLD,
    (JobStatus.ONHOLD, "queue"): LOCKED,
    (JobStatus.ONHOLD, "retry"): LOCKED,
    (JobStatus.NEW, None): READY,
    (JobStatus.VOTING, None): READY,
    (JobStatus.RUNNING, None): ASSIGNED,
    (JobStatus.COMPLETE, None): FINISHED,
    (JobStatus.QUORUM_FAILED, None): TERMINATED,
    (JobStatus.TIMED_OUT, STARTED): TERMINATED,
    (JobStatus.TIMED_OUT, WAITING): EXPIRED,
    (JobStatus.ABORTED, STARTED): TERMINATED,
    (JobStatus.ABORTED, WAITING): CANCELED,
}

# The state of a job that no result named, for statuses that decide it alone.
STATE: Mapping[JobStatus, str] = {
    JobStatus.DRAFT: IN_PROGRESS,
    JobStatus.ONHOLD: IN_PROGRESS,
    JobStatus.NEW: IN_PROGRESS,
    JobStatus.VOTING: IN_PROGRESS,
    JobStatus.RUNNING: IN_PROGRESS,
    JobStatus.QUORUM_FAILED: ERROR,
    JobStatus.TIMED_OUT: TIMEOUT,
    JobStatus.ABORTED: STATE_CANCELED,
}

# Job types: native job kind -> (TheEye ``_type``, ``type``).
JOB_TYPE: Mapping[str, tuple[str, str]] = {
    "script": ("ScriptJob", "script"),
    "input": ("ScriptJob", "script"),
    "approval": ("ApprovalJob", "approval"),
    "notification": ("NotificationJob", "notification"),
}
DEFAULT_JOB_TYPE = ("ScriptJob", "script")

# Credentials: TheEye word -> native role. A TheEye manager may not cancel a task that
# forbids it nor delete history (both need admin there), which is exactly jobyard's user.
CREDENTIAL: Mapping[str, Role] = {
    "viewer": Role.VIEWER,
    "user": Role.USER,
    "manager": Role.USER,
    "admin": Role.ADMIN,
    "owner": Role.ADMIN,
    "root": Role.ADMIN,
    "agent": Role.AGENT,
}

# Error bodies: ``code`` is the name of the HTTP status, as restify names its errors.
ERROR_CODE: Mapping[int, str] = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    413: "PayloadTooLarge",
    429: "TooManyRequests",
    500: "InternalServer",
}


def render_id(native: int) -> str:
    return f"{native:024x}"


def well_formed_id(text: str) -> bool:
    """Whether the text has the form of an id (24 hex digits), whether or not it exists."""
    return bool(_HEX_ID.match(text))


def parse_id(text: str) -> int | None:
    """The native id of a TheEye id, or None when the text is not one."""
    if not _HEX_ID.match(text):
        return None
    value = int(text, 16)
    return value if 0 < value <= _MAX_ID else None


def qualifier(status: JobStatus, hold: str | None, started: bool) -> str | None:
    if status is JobStatus.ONHOLD:
        return hold
    if status in (JobStatus.ABORTED, JobStatus.TIMED_OUT):
        return STARTED if started else WAITING
    return None


def lifecycle(status: JobStatus, *, hold: str | None = None, started: bool = False) -> str:
    """The lifecycle word of a job in ``status`` (see the module's table)."""
    key = (status, qualifier(status, hold, started))
    return LIFECYCLE.get(key) or LIFECYCLE[(status, None)]


def statuses_of(word: str) -> frozenset[JobStatus]:
    """The native statuses whose jobs may show ``word`` as their lifecycle."""
    return frozenset(status for (status, _), w in LIFECYCLE.items() if w == word)


def state(status: JobStatus, stored: str | None, runs: Iterable[NodeRunStatus]) -> str:
    """The state word: the one a result gave, else what the status and runs say."""
    if stored:
        return stored
    if status is JobStatus.COMPLETE:
        return FAILURE if run_failed(runs) else SUCCESS
    return STATE[status]


def result_succeeded(state_word: str | None, exit_code: int | None) -> bool:
    """Whether an agent's result counts as a success: its state word says so; for a word
    of the script's own (or none), its exit code is 0; with neither, TheEye assumes success."""
    if state_word == SUCCESS:
        return True
    if state_word in (FAILURE, ERROR, STATE_CANCELED, TIMEOUT):
        return False
    return exit_code == 0 if exit_code is not None else True


def job_type(kind: str) -> tuple[str, str]:
    return JOB_TYPE.get(kind, DEFAULT_JOB_TYPE)


# Task argument types: native argument type -> TheEye's (``input`` is free text).
ARGUMENT_TYPE: Mapping[str, str] = {
    "text": "input",
    "number": "input",
    "select": "select",
    "date": "date",
    "file": "file",
}

# Task types: native task type -> TheEye's task ``_type``.
TASK_TYPE: Mapping[str, str] = {
    "script": "ScriptTask",
    "input": "ScriptTask",
    "approval": "ApprovalTask",
    "notification": "NotificationTask",
}


def timestamp(when: dt.datetime | None) -> str | None:
    """A JavaScript Date as JSON: ``2020-07-03T12:34:56.789Z``."""
    if when is None:
        return None
    utc = when.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def output_parameters(value: Any) -> list[str]:
    """A result's ``output`` as TheEye keeps it: a list of strings (JSON for non-strings)."""
    if value is None:
        return []
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return [value]
        return output_parameters(parsed) if isinstance(parsed, list) else [value]
    if isinstance(value, list):
        return [v if isinstance(v, str) else json.dumps(v) for v in value]
    return [json.dumps(value)]


def script(
    command: str, argv: Sequence[str] | None, env: Mapping[str, str], dir: str | None
) -> str:
    """The shell script a TheEye agent downloads to run a job's command."""
    lines = ["#!/bin/sh"]
    if dir:
        lines.append(f"cd {shlex.quote(dir)} || exit 1")
    for name, value in sorted(env.items()):
        if _ENV_NAME.match(name):
            lines.append(f"export {name}={shlex.quote(value)}")
    lines.append(shlex.join(argv) if argv is not None else command)
    return "\n".join(lines) + "\n"


def script_md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


# Fields a job list leaves out unless ``include[...]`` names them (the supervisor's fetch).
HEAVY_FIELDS = (
    "task_arguments_values",
    "script_arguments",
    "output",
    "result",
    "task",
    "script",
    "env",
)


def person(user_id: int | None, email: str | None) -> dict[str, Any]:
    """Who acted on a job, as the supervisor records it in a result: ``{email, id, username}``."""
    return {"email": email, "id": render_id(user_id) if user_id else None, "username": email}
