"""The retention loop: every ``retention_interval`` seconds, each organization's policy
is applied (on PostgreSQL by one replica at a time)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from jobyard.dispatch.loops import periodic
from jobyard.service import retention
from jobyard.service.context import Services

log = logging.getLogger("jobyard.dispatch")


@contextlib.asynccontextmanager
async def retention_loop(svc: Services) -> AsyncIterator[None]:
    async def tick() -> None:
        # Mostly one replica at a time; two at once would do no harm (what one deleted,
        # the other no longer finds).
        async with svc.db.begin() as tx:
            if not await tx.leader("retention"):
                return
        for applied in await retention.apply_retention(svc):
            log.info(
                "retention: organization %s: %s jobs deleted, output of %s jobs dropped",
                applied.org_id,
                applied.jobs_deleted,
                applied.outputs_cleared,
            )

    async with periodic("retention", svc.settings.retention_interval, tick):
        yield
