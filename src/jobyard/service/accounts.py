"""Organizations, users, memberships, API tokens and authentication."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import hashlib
import secrets
import time
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from jobyard.domain.accounts import Role, check_email, check_org_name, require
from jobyard.domain.errors import Conflict, Forbidden, Invalid, NotFound, Unauthenticated
from jobyard.domain.records import Member, Organization, Principal, Token, User
from jobyard.service import revocations
from jobyard.service.context import Services
from jobyard.store import Tx

TOKEN_PREFIX = "jy_"
_hasher = PasswordHasher()


@dataclass(frozen=True)
class IssuedToken:
    token: Token
    secret: str


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def hash_password(password: str) -> str:
    if len(password) < 8:
        raise Invalid("a password needs at least 8 characters", "password")
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    if not stored:
        return False
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


async def create_org(svc: Services, name: str, display_name: str | None = None) -> Organization:
    name = check_org_name(name)
    async with svc.db.begin() as tx:
        if await tx.accounts.org_by_name(name):
            raise Conflict(f"an organization named {name!r} exists already")
        return await tx.accounts.insert_org(name, display_name or name, svc.clock.now())


async def org_named(tx: Tx, name: str) -> Organization:
    """The organization with this URL name, or NotFound."""
    org = await tx.accounts.org_by_name(name)
    if org is None:
        raise NotFound(f"no organization named {name!r}")
    return org


async def create_user(
    svc: Services,
    org_name: str,
    email: str,
    role: Role,
    *,
    display_name: str | None = None,
    password: str | None = None,
) -> User:
    """The operator's way (``jobyard admin create-user``, ``jobyard up``): create a user, or
    reuse the one with that email, and give them a role in the organization. The operator
    owns the server and every organization on it, so a password given replaces the user's."""
    email = check_email(email)
    _human_role(role)
    pw_hash = hash_password(password) if password else None
    async with svc.db.begin() as tx:
        org = await org_named(tx, org_name)
        user = await _enrol(svc, tx, org.id, email, role, display_name, pw_hash, None)
    forget_tokens(svc)  # a changed role must not linger in remembered authentications
    revocations.credentials_changed(svc, org.id, user_id=user.id)  # nor in live connections
    return user


def _human_role(role: Role) -> None:
    if role is Role.AGENT:
        raise Invalid(
            "agent is a token role: create a user, then a token with --role agent", "role"
        )


async def _enrol(
    svc: Services,
    tx: Tx,
    org_id: int,
    email: str,
    role: Role,
    display_name: str | None,
    pw_hash: str | None,
    admin: Principal | None,
) -> User:
    """Create the user (with ``pw_hash``) or reuse the existing one, and set their role in
    the organization. An existing user's password changes only when ``admin`` (None: the
    operator) is an admin of every organization they belong to."""
    user = await tx.accounts.user_by_email(email)
    if user is None:
        user = await tx.accounts.insert_user(
            email, display_name or email.split("@")[0], pw_hash, svc.clock.now()
        )
    elif pw_hash:
        if admin is not None:
            await _check_admin_of_every_org(tx, admin, user.id)
        await tx.accounts.set_password(user.id, pw_hash)
        await tx.sessions.revoke_user(user.id, svc.clock.now())  # signed-in browsers too
    await tx.accounts.upsert_membership(org_id, user.id, role, svc.clock.now())
    return user


async def _check_admin_of_every_org(tx: Tx, admin: Principal, user_id: int) -> None:
    """An account is vouched for by the admins of its organizations: only one who is an
    admin of each of them may set its password (none may when it belongs to none)."""
    theirs = {org.id for org, _ in await tx.accounts.orgs_of_user(user_id)}
    mine = {
        org.id for org, role in await tx.accounts.orgs_of_user(admin.user_id) if role is Role.ADMIN
    }
    if not theirs or not theirs <= mine:
        raise Forbidden(
            "this email has an account already, and only an admin of every organization it "
            "belongs to may set its password; leave the password out to add the member "
            "with the password they have",
        )


async def issue_token(
    tx: Tx,
    now: dt.datetime,
    org_id: int,
    user_id: int,
    name: str,
    role: Role | None,
    expires_at: dt.datetime | None,
) -> IssuedToken:
    if expires_at is not None and expires_at <= now:
        raise Invalid("expires_at must be in the future", "expires_at")
    member_role = await tx.accounts.role_of(org_id, user_id)
    if member_role is None:
        raise NotFound("that user is not a member of this organization")
    if role is not None and role is not Role.AGENT and not member_role.at_least(role):
        raise Invalid(f"a {member_role} cannot hold a token with the {role} role", "role")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = await tx.accounts.insert_token(
        org_id, user_id, name, role, secret[:10], hash_token(secret), now, expires_at
    )
    return IssuedToken(token, secret)


async def create_token(
    svc: Services,
    org_name: str,
    email: str,
    *,
    name: str = "cli",
    role: Role | None = None,
    expires_at: dt.datetime | None = None,
) -> IssuedToken:
    """Administrative token creation (from the CLI): no caller to check."""
    email = check_email(email)
    async with svc.db.begin() as tx:
        org = await org_named(tx, org_name)
        user = await tx.accounts.user_by_email(email)
        if user is None:
            raise NotFound(f"no user with email {email!r}")
        return await issue_token(tx, svc.clock.now(), org.id, user.id, name, role, expires_at)


# Authenticated tokens are remembered this long (seconds). A revocation or role change made
# through this process clears the cache at once; another replica's takes at most this long.
TOKEN_CACHE_TTL = 2.0


def _token_cache(svc: Services) -> dict[str, tuple[float, Principal, dt.datetime | None]]:
    return svc.runtime.tokens


def _token_lookups(
    svc: Services,
) -> dict[str, asyncio.Future[tuple[Principal, dt.datetime | None]]]:
    return svc.runtime.token_lookups


def forget_tokens(svc: Services) -> None:
    """Drop every remembered authentication (after a revocation or a role change)."""
    _token_cache(svc).clear()
    _token_lookups(svc).clear()


async def authenticate(svc: Services, secret: str) -> Principal:
    """Turn a presented token into the principal it stands for, or raise Unauthenticated."""
    if not secret:
        raise Unauthenticated("no credential given")
    key = hash_token(secret)
    cache = _token_cache(svc)
    hit = cache.get(key)
    now_mono = time.monotonic()
    fresh = hit is not None and now_mono - hit[0] < TOKEN_CACHE_TTL
    if hit is not None and fresh and (hit[2] is None or hit[2] > svc.clock.now()):
        return hit[1]
    who, expires = await _lookup_once(svc, key)
    if len(cache) > 10_000:
        cache.clear()
    cache[key] = (now_mono, who, expires)
    return who


async def _lookup_once(svc: Services, key: str) -> tuple[Principal, dt.datetime | None]:
    """One database lookup per token at a time: when the remembered answer expires under
    load, every request in flight with that token waits for the same lookup instead of
    each making its own."""
    lookups = _token_lookups(svc)
    task = lookups.get(key)
    if task is None:
        task = asyncio.ensure_future(_authenticate(svc, key))
        lookups[key] = task

        def done(t: asyncio.Future[tuple[Principal, dt.datetime | None]]) -> None:
            if lookups.get(key) is t:
                del lookups[key]
            if not t.cancelled():
                t.exception()  # retrieved here, whoever still waits for it

        task.add_done_callback(done)
    # Shielded: a request cancelled meanwhile does not cancel the others' lookup.
    return await asyncio.shield(task)


async def _authenticate(svc: Services, key: str) -> tuple[Principal, dt.datetime | None]:
    async with svc.db.read() as tx:
        row = await tx.accounts.principal_row(key)
    if row is None:
        raise Unauthenticated("unknown token")
    now = svc.clock.now()
    if row["revoked_at"] is not None:
        raise Unauthenticated("this token was revoked")
    if row["expires_at"] is not None and row["expires_at"] <= now:
        raise Unauthenticated("this token has expired")
    member = Role(row["member_role"])
    token_role = Role(row["token_role"]) if row["token_role"] else None
    role = token_role if token_role is not None else member
    who = Principal(
        org_id=row["org_id"],
        org_name=row["org_name"],
        user_id=row["user_id"],
        email=row["email"],
        display_name=row["display_name"],
        role=role,
        token_id=row["token_id"],
    )
    return who, row["expires_at"]


async def principal_for_user(svc: Services, user_id: int, org_name: str) -> Principal:
    """A session's principal: a signed-in user acting in one of their organizations."""
    async with svc.db.read() as tx:
        org = await tx.accounts.org_by_name(org_name)
        user = await tx.accounts.user_by_id(user_id)
        role = await tx.accounts.role_of(org.id, user_id) if org and user else None
    if org is None or user is None or role is None:
        raise Unauthenticated("this session is no longer valid")
    return Principal(org.id, org.name, user.id, user.email, user.display_name, role)


@functools.cache
def _dummy_hash() -> str:
    """A hash of a password nobody has: checked for unknown emails (and accounts without a
    password) so that they take as long to refuse as a wrong password."""
    return _hasher.hash(secrets.token_urlsafe(24))


def _check(stored: str | None, password: str) -> bool:
    ok = verify_password(stored or _dummy_hash(), password)
    return ok and bool(stored)


async def check_password(svc: Services, stored: str | None, password: str) -> bool:
    """``password`` matches ``stored`` (a dummy when None), verified off the event loop."""
    async with svc.runtime.verify_gate:
        return await asyncio.to_thread(_check, stored, password)


async def login(svc: Services, email: str, password: str) -> User:
    async with svc.db.read() as tx:
        user = await tx.accounts.user_by_email(email.strip().lower())
    stored = user.password_hash if user is not None else None
    if not await check_password(svc, stored, password) or user is None:
        raise Unauthenticated("wrong email or password")
    return user


async def organizations_of(svc: Services, user_id: int) -> list[tuple[Organization, Role]]:
    """The organizations a user belongs to, with the role in each, by name."""
    async with svc.db.read() as tx:
        return await tx.accounts.orgs_of_user(user_id)


# -- use cases of an authenticated caller


async def my_tokens(svc: Services, who: Principal) -> list[Token]:
    async with svc.db.read() as tx:
        all_tokens = who.role is Role.ADMIN
        return await tx.accounts.tokens_of(who.org_id, None if all_tokens else who.user_id)


async def new_token(
    svc: Services,
    who: Principal,
    name: str,
    role: Role | None,
    expires_at: dt.datetime | None,
    email: str | None = None,
) -> IssuedToken:
    """A token for the caller, or (admins) for another member, e.g. an agent credential."""
    require(who.role, Role.VIEWER, "creating a token")
    async with svc.db.begin() as tx:
        user_id = who.user_id
        if email is not None and check_email(email) != who.email:
            require(who.role, Role.ADMIN, "creating a token for another member")
            member = await tx.accounts.member_by_email(who.org_id, check_email(email))
            if member is None:
                raise NotFound(f"no member with email {email!r}")
            user_id = member.user_id
        if role is Role.AGENT:
            require(who.role, Role.ADMIN, "creating an agent token")
        return await issue_token(tx, svc.clock.now(), who.org_id, user_id, name, role, expires_at)


async def revoke_token(svc: Services, who: Principal, token_id: int) -> None:
    async with svc.db.begin() as tx:
        token = await tx.accounts.token_by_id(who.org_id, token_id)
        if token is None or (token.user_id != who.user_id and who.role is not Role.ADMIN):
            raise NotFound(f"no token {token_id}")
        await tx.accounts.revoke_token(token.id, svc.clock.now())
    forget_tokens(svc)
    revocations.credentials_changed(svc, who.org_id, token_id=token.id)


async def list_members(svc: Services, who: Principal) -> list[Member]:
    require(who.role, Role.VIEWER, "listing members")
    async with svc.db.read() as tx:
        return await tx.accounts.members(who.org_id)


async def set_member(
    svc: Services,
    who: Principal,
    email: str,
    role: Role,
    display_name: str | None = None,
    password: str | None = None,
) -> Member:
    """Add a member (creating the user when the email is new) or change their role."""
    require(who.role, Role.ADMIN, "managing members")
    email = check_email(email)
    _human_role(role)
    pw_hash = hash_password(password) if password else None
    async with svc.db.begin() as tx:
        await _enrol(svc, tx, who.org_id, email, role, display_name, pw_hash, who)
        member = await tx.accounts.member_by_email(who.org_id, email)
    forget_tokens(svc)
    if member is None:  # pragma: no cover - the membership was written just above
        raise NotFound(f"no member with email {email!r}")
    revocations.credentials_changed(svc, who.org_id, user_id=member.user_id)
    return member


async def remove_member(svc: Services, who: Principal, user_id: int) -> None:
    require(who.role, Role.ADMIN, "managing members")
    if user_id == who.user_id:
        raise Conflict("you cannot remove yourself; ask another admin")
    async with svc.db.begin() as tx:
        if not await tx.accounts.delete_membership(who.org_id, user_id):
            raise NotFound(f"no member {user_id}")
        await tx.sessions.revoke_user(user_id, svc.clock.now(), org_id=who.org_id)
    forget_tokens(svc)
    revocations.credentials_changed(svc, who.org_id, user_id=user_id)
