"""Marking definitions that files manage (``jobyard apply``) on the dashboard's lists."""

from __future__ import annotations

from jobyard.service import definitions
from jobyard.web.page import Page


async def managed_names(page: Page, kind: str) -> dict[str, str]:
    """The names of ``kind`` that files manage, with the files they come from."""
    return {m.key: m.source for m in await definitions.managed(page.svc, page.user, kind)}
