"""Reading the event log for live streams (replay after an id)."""

from __future__ import annotations

from jobyard.domain.accounts import Role, require
from jobyard.domain.records import Event, Principal
from jobyard.service.context import Services


def check_reader(who: Principal) -> None:
    """Forbidden unless the caller may read the organization's events. A stream calls it
    before it starts: once its 200 is sent, a refusal can no longer be told."""
    require(who.role, Role.VIEWER, "reading events")


async def org_events(svc: Services, who: Principal, after_id: int = 0) -> list[Event]:
    """The organization's events after an id, oldest first (at most 500)."""
    check_reader(who)
    async with svc.db.read() as tx:
        return await tx.events.of_org(who.org_id, after_id)


async def last_event_id(svc: Services) -> int:
    """The newest event id: where a page rendered now starts following a stream."""
    async with svc.db.read() as tx:
        return await tx.events.last_id()
