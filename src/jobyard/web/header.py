"""What the page header shows besides the navigation: counts that need a query."""

from __future__ import annotations

from typing import Any

from jobyard.domain.records import Principal
from jobyard.service import notifications
from jobyard.service.context import Services


async def header_data(svc: Services, who: Principal) -> dict[str, Any]:
    """Values for the header of a full page: the unread notification count."""
    return {"unread": await notifications.unread_count(svc, who)}
