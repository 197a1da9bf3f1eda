"""Definitions managed by files: which ones ``jobyard apply`` manages, from which source.

``apply`` itself goes through the ordinary use cases (create and change tasks, stacks,
schedules, triggers, webhooks); afterwards it records here what the files name, so that
the dashboard marks those definitions and a later ``apply --prune`` removes only what
files managed and no longer name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from jobyard.domain.accounts import Role, require
from jobyard.domain.errors import Invalid
from jobyard.domain.records import Principal
from jobyard.service.context import Services
from jobyard.store.definitions import DefinitionsRepo, Managed
from jobyard.wire.definitions import KINDS


async def managed(svc: Services, who: Principal, kind: str | None = None) -> list[Managed]:
    require(who.role, Role.VIEWER, "reading managed definitions")
    if kind is not None and kind not in KINDS:
        raise Invalid(f"unknown kind {kind!r}: use one of {', '.join(KINDS)}", "kind")
    async with svc.db.read() as tx:
        return await DefinitionsRepo(tx.conn).managed(who.org_id, kind)


async def record_managed(
    svc: Services, who: Principal, kinds: Mapping[str, Sequence[str]], source: str
) -> list[Managed]:
    """Replace the managed set of each kind given (the others stay as they are)."""
    require(who.role, Role.USER, "recording managed definitions")
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise Invalid(f"unknown kind {unknown[0]!r}: use one of {', '.join(KINDS)}", "kinds")
    if not source.strip() or len(source) > 1000:
        raise Invalid("source must name the files, in at most 1000 characters", "source")
    for kind, keys in kinds.items():
        for key in keys:
            if not key or len(key) > 2000:
                raise Invalid(f"{kind}: a name of 1 to 2000 characters", f"kinds.{kind}")
    async with svc.db.begin() as tx:
        repo = DefinitionsRepo(tx.conn)
        now = svc.clock.now()
        for kind, keys in kinds.items():
            await repo.replace(who.org_id, kind, keys, source, now)
        return await repo.managed(who.org_id)
