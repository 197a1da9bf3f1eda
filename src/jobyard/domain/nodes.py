"""A node's availability: one rule, read by node listings, Chef's node_states, target
selection and the dispatcher alike, so that what a listing says is what the next job finds.

    offline        no agent (never connected, said goodbye, silent past TTL + grace)
    reconnecting   online, but its agent has not said hello (with the runs it holds) since
                   the server restarted: commits wait for that hello, within the grace
    busy           its agent reported every slot taken (including a run being killed after
                   a timeout or stop, until the agent reports the slot free)
    available      none of the above: a commit is acked
"""

from __future__ import annotations

from enum import StrEnum


class Availability(StrEnum):
    AVAILABLE = "available"
    BUSY = "busy"
    RECONNECTING = "reconnecting"
    OFFLINE = "offline"

    @property
    def word(self) -> str:
        """Chef's two words (node_states, the native ``availability`` field)."""
        return "available" if self is Availability.AVAILABLE else "unavailable"


# Why a node did not run its part of a job, as node runs, `jobyard run`, `jobyard job` and the
# dashboard show it. The agent's own refusals read "busy" and "not allowed: ...".
OFFLINE_REASON = "node is offline"
UNKNOWN_REASON = "node is unknown: no agent has ever registered with this name"


def availability(online: bool, connected: bool, busy: bool) -> Availability:
    if not online:
        return Availability.OFFLINE
    if not connected:
        return Availability.RECONNECTING
    return Availability.BUSY if busy else Availability.AVAILABLE


def last_seen_refresh(ttl: float, grace: float) -> float:
    """How often a connected node's last-seen time is written (seconds): heartbeats are
    kept in memory, and a node's is written, batched, once this much has passed since (and
    once more, as it was heard, when the node falls quiet: silence counts from it)."""
    return (ttl + grace) / 3
