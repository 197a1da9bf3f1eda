"""Password sign-in for API clients (Kragle's ``POST /authenticate`` and its inline auth):
a user's email and password become a principal in one of their organizations.

Failed attempts count against the caller's address and against the account (``throttle``):
past the address's budget it answers 429; past a few failures on an account, each attempt on
it waits longer before the password is checked, and the right one still gets in.

A signed-in browser holds a cookie with a random session id; the session itself is a row on
the server (``web_sessions``: who, which organization, created, last seen, expires, revoked),
so signing out, changing the password or leaving the organization ends it for every copy
of the cookie.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import time
from dataclasses import replace

from jobyard.domain.errors import Forbidden, NotFound, Unauthenticated
from jobyard.domain.records import Principal
from jobyard.service import accounts, throttle
from jobyard.service.context import Services
from jobyard.service.cookies import MAX_AGE, Session


async def sign_in(
    svc: Services, email: str, password: str, *, client: str, org_name: str | None = None
) -> Principal:
    """The principal of a user who gave the right password, in ``org_name`` (or their first
    organization by name). Wrong credentials answer Unauthenticated, whatever was wrong;
    with password sign-in turned off (``password_sign_in``), every attempt is Forbidden."""
    if not svc.settings.password_sign_in:
        raise Forbidden(
            "password sign-in is turned off on this server: use its single sign-on provider "
            "(API clients: a token)"
        )
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


# -- cookie sessions kept on the server (the dashboard, Kragle's log-in)

# last_seen_at is written at most this often per session (not on every request).
TOUCH_EVERY = dt.timedelta(seconds=60)


def _key(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


async def open_session(svc: Services, who: Principal) -> Session:
    """A new signed-in session for ``who`` (a fresh random id: a sign-in never reuses the
    visitor's), recorded on the server; the cookie carries only the id."""
    session = Session(sid=secrets.token_urlsafe(24), issued=int(time.time()))
    now = svc.clock.now()
    async with svc.db.begin() as tx:
        await tx.sessions.insert(
            _key(session.sid),
            who.user_id,
            who.org_id,
            now,
            now + dt.timedelta(seconds=MAX_AGE),
        )
    return replace(session, user_id=who.user_id, org=who.org_name)


async def restore(svc: Services, session: Session) -> tuple[Session, Principal | None]:
    """The session behind a cookie and its principal; (the bare session, None) when the
    id names no live session (never signed in, signed out, expired or revoked)."""
    now = svc.clock.now()
    async with svc.db.read() as tx:
        row = await tx.sessions.find(_key(session.sid))
    if row is None or row["revoked_at"] is not None or row["expires_at"] <= now:
        return session, None
    try:
        who = await accounts.principal_for_user(svc, row["user_id"], row["org_name"])
    except Unauthenticated:
        return session, None
    if now - row["last_seen_at"] >= TOUCH_EVERY:
        async with svc.db.begin() as tx:
            await tx.sessions.touch(_key(session.sid), now)
    return replace(session, user_id=who.user_id, org=who.org_name), who


async def close_session(svc: Services, session: Session) -> None:
    """Sign out: the session's id stops working at once, wherever the cookie was copied."""
    async with svc.db.begin() as tx:
        await tx.sessions.revoke(_key(session.sid), svc.clock.now())


async def switch_org(svc: Services, session: Session, org_name: str) -> Session:
    """The same session, now acting in another of the user's organizations."""
    if session.user_id is None:
        raise Unauthenticated("sign in first")
    mine = {org.name: org.id for org, _ in await accounts.organizations_of(svc, session.user_id)}
    if org_name not in mine:
        raise NotFound(f"you are not a member of an organization named {org_name!r}")
    async with svc.db.begin() as tx:
        await tx.sessions.set_org(_key(session.sid), mine[org_name])
    return session.for_org(org_name)
