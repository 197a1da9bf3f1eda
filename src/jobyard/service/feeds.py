"""Reading the event log for live streams (replay after an id)."""

from __future__ import annotations

from jobyard.domain.accounts import Role, require
from jobyard.domain.records import Event, Principal
from jobyard.service.context import Services


async def org_events(svc: Services, who: Principal, after_id: int = 0) -> list[Event]:
    """The organization's events after an id, oldest first (at most 500)."""
    require(who.role, Role.VIEWER, "reading events")
    async with svc.db.read() as tx:
        return await tx.events.of_org(who.org_id, after_id)


async def last_event_id(svc: Services) -> int:
    """The newest event id: where a page rendered now starts following a stream."""
    async with svc.db.read() as tx:
        return await tx.events.last_id()
