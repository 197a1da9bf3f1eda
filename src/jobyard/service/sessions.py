"""Password sign-in for API clients (Kragle's ``POST /authenticate`` and its inline auth):
a user's email and password become a principal in one of their organizations.

Failed attempts count against the caller's address; past the budget every attempt from it
answers 429 until the window passes, so a password cannot be guessed at request speed.
"""

from __future__ import annotations

import time

from jobyard.domain.errors import NotFound, RateLimited, Unauthenticated
from jobyard.domain.policies import FailureBudget
from jobyard.domain.records import Principal
from jobyard.service import accounts
from jobyard.service.context import Services

_BUDGET = "sessions.failures"


def budget(svc: Services) -> FailureBudget:
    found = svc.runtime.get(_BUDGET)
    if found is None:
        found = svc.runtime[_BUDGET] = FailureBudget(limit=10, window=60.0)
    assert isinstance(found, FailureBudget)
    return found


async def sign_in(
    svc: Services, email: str, password: str, *, client: str, org_name: str | None = None
) -> Principal:
    """The principal of a user who gave the right password, in ``org_name`` (or their first
    organization by name). Wrong credentials answer Unauthenticated, whatever was wrong."""
    limiter = budget(svc)
    now = time.monotonic()
    wait = limiter.retry_after(client, now)
    if wait is not None:
        raise RateLimited(
            f"too many failed sign-ins from this address; retry in {wait:.0f} s",
            retry_after=max(1, round(wait)),
        )
    try:
        user = await accounts.login(svc, email, password)
    except Unauthenticated:
        limiter.fail(client, now)
        raise
    orgs = [org.name for org, _ in await accounts.organizations_of(svc, user.id)]
    if not orgs:
        raise Unauthenticated("this account belongs to no organization: ask an admin to add you")
    if org_name is None:
        org_name = orgs[0]
    elif org_name not in orgs:
        raise NotFound(f"you are not a member of an organization named {org_name!r}")
    return await accounts.principal_for_user(svc, user.id, org_name)


async def resume(svc: Services, user_id: int, org_name: str) -> Principal:
    """The principal of a signed session (Unauthenticated when it no longer holds)."""
    return await accounts.principal_for_user(svc, user_id, org_name)
