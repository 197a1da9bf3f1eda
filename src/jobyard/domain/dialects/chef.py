"""Chef Push Jobs: 32-hex-digit ids, RFC 1123 dates, job and node words, feed events.

The native job words are Chef's own; ``draft`` and ``onhold`` (jobs no Chef client
creates) read as ``new``. Node states are the Push Jobs 2 words (``succeeded`` and
``failed``, which replaced the older ``complete``).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import email.utils
import re
from collections.abc import Mapping
from typing import Any

from jobyard.domain.errors import Invalid
from jobyard.domain.jobs import JobStatus, NodeRunStatus
from jobyard.domain.rounds import VOTING_TIMEOUT

_HEX_ID = re.compile(r"^[0-9a-fA-F]{32}$")
_MAX_ID = 2**63 - 1

JOB_STATUS: Mapping[JobStatus, str] = {
    JobStatus.DRAFT: "new",
    JobStatus.ONHOLD: "new",
    JobStatus.NEW: "new",
    JobStatus.VOTING: "voting",
    JobStatus.RUNNING: "running",
    JobStatus.COMPLETE: "complete",
    JobStatus.QUORUM_FAILED: "quorum_failed",
    JobStatus.TIMED_OUT: "timed_out",
    JobStatus.ABORTED: "aborted",
}

NODE_STATE: Mapping[NodeRunStatus, str] = {s: s.value for s in NodeRunStatus}

# quorum_vote's status for a node run leaving ``new`` (pushy_job_state's words). A node
# that becomes unavailable was "down", or silent until the voting timeout.
VOTE: Mapping[NodeRunStatus, str] = {
    NodeRunStatus.READY: "success",
    NodeRunStatus.NACKED: "failure",
    NodeRunStatus.UNAVAILABLE: "down",
}

# run_complete's status for a node run that had been committed (ready or running).
RUN_COMPLETE: Mapping[NodeRunStatus, str] = {
    NodeRunStatus.SUCCEEDED: "success",
    NodeRunStatus.FAILED: "failure",
    NodeRunStatus.CRASHED: "crashed",
    NodeRunStatus.UNAVAILABLE: "client_died_while_running",
    NodeRunStatus.TIMED_OUT: "timed_out",
    NodeRunStatus.ABORTED: "aborted",
}


def render_id(job_id: int) -> str:
    return f"{job_id:032x}"


def parse_id(text: str) -> int | None:
    """The native id of a Chef job id, or None when the text is not one."""
    if not _HEX_ID.match(text):
        return None
    value = int(text, 16)
    return value if 0 < value <= _MAX_ID else None


def rfc1123(when: dt.datetime) -> str:
    """``Tue, 04 Sep 2012 23:01:02 GMT``."""
    return email.utils.format_datetime(when.astimezone(dt.UTC).replace(microsecond=0), usegmt=True)


def feed_timestamp(when: dt.datetime) -> str:
    """The feeds' timestamp: ``2014-07-10 05:17:44.995958Z``."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%fZ")


def feed_event(
    kind: str,
    type: str,
    from_status: str | None,
    to_status: str | None,
    node: str | None,
    reason: str | None = None,
) -> tuple[str, dict[str, Any]] | None:
    """The job-feed event (name, data without timestamp) a native event becomes, if any.

    A failed quorum is told by ``job_complete`` with status ``quorum_failed``: the Push
    Jobs feed has no separate event for it. Ready nodes becoming ``was_ready`` then are
    not told either (pushy_job_state sends them to rehab without an event).
    """
    if type == "job.status" and to_status is not None:
        status = JobStatus(to_status)
        if status is JobStatus.NEW:
            return "start", {}
        if status is JobStatus.RUNNING:
            return "quorum_succeeded", {}
        if status.terminal:
            return "job_complete", {"status": JOB_STATUS[status]}
        return None
    if type == "node_run.status" and to_status is not None and from_status is not None:
        before, after = NodeRunStatus(from_status), NodeRunStatus(to_status)
        if before is NodeRunStatus.NEW and after in VOTE:
            word = VOTE[after]
            if after is NodeRunStatus.UNAVAILABLE and reason == VOTING_TIMEOUT:
                word = "voting_timeout"
            return "quorum_vote", {"node": node, "status": word}
        if before is NodeRunStatus.READY and after is NodeRunStatus.UNAVAILABLE:
            return "quorum_vote", {"node": node, "status": "down"}  # lost while voting
        if after is NodeRunStatus.RUNNING:
            return "run_start", {"node": node}
        if before in (NodeRunStatus.READY, NodeRunStatus.RUNNING) and after in RUN_COMPLETE:
            return "run_complete", {"node": node, "status": RUN_COMPLETE[after]}
    return None


def check_file(value: str) -> None:
    """A job's ``file`` is ``raw:<text>`` or ``base64:<data>`` (pushy_jobs_resource)."""
    if value.startswith("raw:"):
        return
    if not value.startswith("base64:"):
        raise Invalid("invalid file contents (expected 'base64:...' or 'raw:...')", "file")
    try:
        base64.b64decode(value[len("base64:") :], validate=True)
    except (binascii.Error, ValueError):
        raise Invalid("invalid file contents (couldn't decode base64 string)", "file") from None


def job_options(
    user: str | None,
    dir: str | None,
    env: Mapping[str, str] | None,
    capture_output: bool,
    file: str | None,
    *,
    include_file: bool = False,
) -> dict[str, Any]:
    """The options a job was started with, as Push Jobs' job resources echo them.

    ``capture_output`` appears only when true; the file is ``file_specified: true``
    unless asked for with ``?include_file=true`` (pushy_object:assemble_job_ejson).
    """
    out: dict[str, Any] = {}
    if user is not None:
        out["user"] = user
    if dir is not None:
        out["dir"] = dir
    if env is not None:
        out["env"] = dict(env)
    if capture_output:
        out["capture_output"] = True
    if file is not None:
        out.update({"file": file} if include_file else {"file_specified": True})
    return out


ORG_FEED_EVENTS = frozenset({"start", "job_complete"})
