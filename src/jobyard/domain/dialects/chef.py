"""Chef Push Jobs: 32-hex-digit ids, RFC 1123 dates, job and node words, feed events.

The native job words are Chef's own; ``draft`` and ``onhold`` (jobs no Chef client
creates) read as ``new``. Node states are the Push Jobs 2 words (``succeeded`` and
``failed``, which replaced the older ``complete``).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
from collections.abc import Mapping
from typing import Any

from jobyard.domain.jobs import JobStatus, NodeRunStatus

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

# quorum_vote's status for a node run leaving ``new``.
VOTE: Mapping[NodeRunStatus, str] = {
    NodeRunStatus.READY: "success",
    NodeRunStatus.NACKED: "failure",
    NodeRunStatus.UNAVAILABLE: "lost_availability",
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
    kind: str, type: str, from_status: str | None, to_status: str | None, node: str | None
) -> tuple[str, dict[str, Any]] | None:
    """The job-feed event (name, data without timestamp) a native event becomes, if any.

    A failed quorum is told by ``job_complete`` with status ``quorum_failed``: the Push
    Jobs feed has no separate event for it.
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
            return "quorum_vote", {"node": node, "status": VOTE[after]}
        if after is NodeRunStatus.RUNNING:
            return "run_start", {"node": node}
        if before in (NodeRunStatus.READY, NodeRunStatus.RUNNING) and after in RUN_COMPLETE:
            return "run_complete", {"node": node, "status": RUN_COMPLETE[after]}
    return None


ORG_FEED_EVENTS = frozenset({"start", "job_complete"})
