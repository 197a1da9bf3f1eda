"""The cluster lifecycle, as data.

    pending ──▶ creating ──▶ available ⇄ scaling
                   │            │  ╲
                   ▼            ▼   ╲──▶ error ──▶ (available again when members return)
                 error     pending_terminate ──▶ terminating ──▶ terminated

A cluster is a named pool of nodes; agents join it with ``--cluster NAME``. It is
available while at least ``desired_nodes`` of its members are online.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from jobyard.domain.errors import Invalid, InvalidTransition


class ClusterStatus(StrEnum):
    PENDING = "pending"
    CREATING = "creating"
    AVAILABLE = "available"
    SCALING = "scaling"
    PENDING_TERMINATE = "pending_terminate"
    TERMINATING = "terminating"
    TERMINATED = "terminated"
    ERROR = "error"


_S = ClusterStatus
CLUSTER_TRANSITIONS: Mapping[ClusterStatus, frozenset[ClusterStatus]] = {
    _S.PENDING: frozenset({_S.CREATING, _S.PENDING_TERMINATE, _S.ERROR}),
    _S.CREATING: frozenset({_S.AVAILABLE, _S.ERROR, _S.PENDING_TERMINATE}),
    _S.AVAILABLE: frozenset({_S.SCALING, _S.ERROR, _S.PENDING_TERMINATE}),
    _S.SCALING: frozenset({_S.AVAILABLE, _S.ERROR, _S.PENDING_TERMINATE}),
    _S.ERROR: frozenset({_S.AVAILABLE, _S.PENDING_TERMINATE}),
    _S.PENDING_TERMINATE: frozenset({_S.TERMINATING}),
    _S.TERMINATING: frozenset({_S.TERMINATED}),
    _S.TERMINATED: frozenset(),
}

CLUSTER_TYPES = ("production", "sandbox")
MAX_NODES = 10_000


def check_cluster_transition(current: ClusterStatus, target: ClusterStatus) -> None:
    if target not in CLUSTER_TRANSITIONS[current]:
        raise InvalidTransition(f"a cluster cannot go from {current} to {target}")


def next_cluster_status(
    status: ClusterStatus, online_members: int, desired: int, creating_for: float, timeout: float
) -> ClusterStatus | None:
    """What membership implies for a cluster, or None when nothing changes."""
    enough = online_members >= desired
    if status is _S.PENDING:
        return _S.CREATING
    if status is _S.CREATING:
        if enough:
            return _S.AVAILABLE
        return _S.ERROR if creating_for > timeout else None
    if status is _S.SCALING:
        return _S.AVAILABLE if online_members == desired or enough else None
    if status is _S.AVAILABLE and not enough:
        return _S.ERROR
    if status is _S.ERROR and enough:
        return _S.AVAILABLE
    if status is _S.PENDING_TERMINATE:
        return _S.TERMINATING
    if status is _S.TERMINATING:
        return _S.TERMINATED
    return None


MAX_TIME_TO_IDLE = 365 * 24 * 3600  # a year; also keeps it within a 32-bit column


def check_time_to_idle(seconds: object) -> int:
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int)
        or not 0 <= seconds <= MAX_TIME_TO_IDLE
    ):
        raise Invalid(
            f"time_to_idle is a number of seconds from 0 to {MAX_TIME_TO_IDLE}", "time_to_idle"
        )
    return seconds


def check_desired(nodes: object) -> int:
    if isinstance(nodes, bool) or not isinstance(nodes, int) or not 1 <= nodes <= MAX_NODES:
        raise Invalid(f"nodes must be a whole number from 1 to {MAX_NODES}", "nodes")
    return nodes


# A job targeting a cluster that is being made waits for it (Xplenty: the job is accepted
# and runs once the cluster is available); one whose cluster ends or fails first fails.
WAIT_KEY = "wait_cluster"
DEAD = frozenset(
    {
        ClusterStatus.PENDING_TERMINATE,
        ClusterStatus.TERMINATING,
        ClusterStatus.TERMINATED,
        ClusterStatus.ERROR,
    }
)


def job_waits(status: ClusterStatus, matching_nodes: int) -> bool:
    """A job on this cluster waits (instead of being refused) while none of its nodes has
    joined yet, unless the cluster is failing or ending; with nodes it runs at once."""
    return status not in DEAD and matching_nodes == 0
