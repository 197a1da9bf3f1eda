"""Password sign-in for API clients (Kragle's ``POST /authenticate`` and its inline auth):
a user's email and password become a principal in one of their organizations.

Failed attempts count against the caller's address and against the account (``throttle``):
past the address's budget it answers 429; past a few failures on an account, each attempt on
it waits longer before the password is checked, and the right one still gets in.
"""

from __future__ import annotations

from jobyard.domain.errors import NotFound, Unauthenticated
from jobyard.domain.records import Principal
from jobyard.service import accounts, throttle
from jobyard.service.context import Services


async def sign_in(
    svc: Services, email: str, password: str, *, client: str, org_name: str | None = None
) -> Principal:
    """The principal of a user who gave the right password, in ``org_name`` (or their first
    organization by name). Wrong credentials answer Unauthenticated, whatever was wrong."""
    tried = await throttle.attempt(
        svc, "sessions", client=client, account=email.strip().lower(), what="sign-ins"
    )
    try:
        user = await accounts.login(svc, email, password)
    except Unauthenticated:
        tried.failed()
        raise
    tried.succeeded()
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
