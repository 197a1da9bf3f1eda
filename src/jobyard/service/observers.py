"""The observers of recorded events, in the order they act, composed in one place.

``Services`` runs exactly these unless it is given others, so a use case notifies, frees
holds and advances chains the same way in the server, in ``jobyard admin`` and in a bare
``Services`` whatever modules happen to be imported."""

from __future__ import annotations

from jobyard.domain.notifications import may_notify
from jobyard.service import chains, holds, outbox
from jobyard.service.events import Observing


def _job_status(event_type: str) -> bool:
    return event_type == "job.status"


def standard_observers() -> tuple[Observing, ...]:
    return (
        # Watchers and deliveries first: a job's creator watches it before anything else acts.
        Observing(outbox.notify_on_event, outbox.notify_on_events, acts_on=may_notify),
        # A task's job finished: free its hold, wake the queues, maybe schedule a retry.
        Observing(holds.on_job_finished, acts_on=_job_status),
        # A stack step finished: advance its chain.
        Observing(chains.on_step_finished, acts_on=_job_status),
    )
