"""Chef identities and signed requests: who a Chef client is, from its key.

An administrator registers a Chef user or client name for a member of the organization,
with the public half of the key that Chef client signs with; or lets jobyard make the
pair and hands the private half out once, as ``knife user key create`` does. A signed
request (``X-Ops-UserId`` + signature) then acts as that member, with the member's role
(or the narrower role given at registration, e.g. ``agent``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization

from jobyard.domain.accounts import Role, check_email, require
from jobyard.domain.dialects import chef_signing
from jobyard.domain.errors import Conflict, Invalid, NotFound, Unauthenticated
from jobyard.domain.records import ChefKey, Organization, Principal
from jobyard.service import revocations
from jobyard.service.accounts import org_named
from jobyard.service.context import Services
from jobyard.store import Tx

# Chef user and client names: letters, digits, '.', '_', '-' (client names are often FQDNs).
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,255}\Z")


@dataclass(frozen=True)
class AddedKey:
    key: ChefKey
    private_key: str | None  # only when jobyard made the pair: shown once, never stored


def fingerprint(public_pem: str) -> str:
    """SHA-256 of the key's DER form, as hex pairs (what `jobyard admin chef-key list` shows)."""
    key = chef_signing.load_public_key(public_pem)
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return ":".join(f"{b:02x}" for b in hashlib.sha256(der).digest()[:16])


async def _add(
    svc: Services,
    tx: Tx,
    org: Organization,
    name: str,
    email: str,
    public_key: str | None,
    role: Role | None,
) -> AddedKey:
    if not _NAME.match(name):
        raise Invalid(
            "name must be a Chef user or client name: letters, digits, '.', '_' or '-'", "name"
        )
    member = await tx.accounts.member_by_email(org.id, check_email(email))
    if member is None:
        raise NotFound(f"no member with email {email!r} in {org.name}")
    if role is not None and role is not Role.AGENT and not member.role.at_least(role):
        raise Invalid(f"a {member.role} cannot sign as {role}", "role")
    private_pem = None
    if public_key is None:
        private_pem, public_key = chef_signing.new_key_pair()
    else:
        public_key = chef_signing.public_pem(chef_signing.load_public_key(public_key))
    if await tx.chef_keys.by_name(org.id, name) is not None:
        raise Conflict(f"the Chef name {name!r} is already registered in {org.name}")
    await tx.chef_keys.insert(
        org.id, member.user_id, name, role.value if role else None, public_key, svc.clock.now()
    )
    key = await tx.chef_keys.by_name(org.id, name)
    assert key is not None
    return AddedKey(key, private_pem)


# -- administrative use cases (the CLI: no caller to check)


async def add_key(
    svc: Services,
    org_name: str,
    name: str,
    email: str,
    *,
    public_key: str | None = None,
    role: Role | None = None,
) -> AddedKey:
    """Register a Chef name for a member; without a public key, make the pair."""
    async with svc.db.begin() as tx:
        return await _add(svc, tx, await org_named(tx, org_name), name, email, public_key, role)


async def list_keys(svc: Services, org_name: str) -> list[ChefKey]:
    async with svc.db.read() as tx:
        return await tx.chef_keys.of_org((await org_named(tx, org_name)).id)


async def remove_key(svc: Services, org_name: str, name: str) -> None:
    async with svc.db.begin() as tx:
        org = await org_named(tx, org_name)
        key = await tx.chef_keys.by_name(org.id, name)
        if key is None or not await tx.chef_keys.delete(org.id, name):
            raise NotFound(f"no Chef name {name!r} in {org_name}")
    # Feeds opened with the key end; a reconnect is authenticated afresh (and refused).
    revocations.credentials_changed(svc, org.id, user_id=key.user_id)


# -- the same for an administrator of the organization (the API)


async def add_key_as(
    svc: Services,
    who: Principal,
    name: str,
    email: str,
    *,
    public_key: str | None = None,
    role: Role | None = None,
) -> AddedKey:
    require(who.role, Role.ADMIN, "registering a Chef key")
    return await add_key(svc, who.org_name, name, email, public_key=public_key, role=role)


async def list_keys_as(svc: Services, who: Principal) -> list[ChefKey]:
    require(who.role, Role.ADMIN, "listing Chef keys")
    return await list_keys(svc, who.org_name)


async def remove_key_as(svc: Services, who: Principal, name: str) -> None:
    require(who.role, Role.ADMIN, "removing a Chef key")
    await remove_key(svc, who.org_name, name)


# -- signed requests


async def authenticate(
    svc: Services,
    org_name: str,
    sig: chef_signing.Signature,
    *,
    method: str,
    path: str,
    body: bytes,
) -> Principal:
    """The member a signed request acts as, or Unauthenticated in Chef's words.

    An unknown organization reads like an unknown name: a caller who cannot sign learns
    nothing about which organizations exist.
    """
    async with svc.db.read() as tx:
        org = await tx.accounts.org_by_name(org_name)
        key = await tx.chef_keys.by_name(org.id, sig.user_id) if org else None
        member = await tx.accounts.role_of(org.id, key.user_id) if org and key else None
    if org is None or key is None or member is None:
        raise Unauthenticated(
            f"Failed to authenticate as '{sig.user_id}'. "
            "Ensure that your node_name and client key are correct."
        )
    chef_signing.verify(
        chef_signing.load_public_key(key.public_key),
        sig,
        method=method,
        path=path,
        body=body,
        now=svc.clock.now(),
    )
    role = Role(key.role) if key.role else member
    if key.role and not member.at_least(role) and role is not Role.AGENT:
        role = member  # the member was demoted since: never more than the membership
    return Principal(org.id, org.name, key.user_id, key.email, key.display_name, role)
