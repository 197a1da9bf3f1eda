"""Chef identities through the service layer, on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest

from jobyard.domain.accounts import Role
from jobyard.domain.dialects import chef_signing
from jobyard.domain.errors import Conflict, Invalid, NotFound, Unauthenticated
from jobyard.service import accounts, chef_keys
from jobyard.service.context import Services
from tests.dialects.chef.signer import signed_headers

PATH = "/compat/chef/organizations/acme/pushy/jobs"


async def authenticate(svc: Services, user: str, private: str, org: str = "acme") -> Role:
    headers = signed_headers(user, private, "GET", "http://h" + PATH)
    sig = chef_signing.parse({k.lower(): v for k, v in headers.items()})
    who = await chef_keys.authenticate(svc, org, sig, method="GET", path=PATH, body=b"")
    assert who.org_name == org and who.email == "alice@acme.test"
    return who.role


async def test_keys_made_given_listed_used_and_removed(any_svc: Services) -> None:
    svc = any_svc
    await accounts.create_org(svc, "acme")
    await accounts.create_org(svc, "rival")
    await accounts.create_user(svc, "acme", "alice@acme.test", Role.ADMIN)
    made = await chef_keys.add_key(svc, "acme", "alice", "alice@acme.test")
    assert made.private_key is not None and made.key.role is None
    private, public = chef_signing.new_key_pair()
    given = await chef_keys.add_key(
        svc, "acme", "alice.ro", "alice@acme.test", public_key=public, role=Role.VIEWER
    )
    assert given.private_key is None and given.key.public_key == public
    assert [k.name for k in await chef_keys.list_keys(svc, "acme")] == ["alice", "alice.ro"]
    assert await chef_keys.list_keys(svc, "rival") == []
    assert await authenticate(svc, "alice", made.private_key) is Role.ADMIN
    assert await authenticate(svc, "alice.ro", private) is Role.VIEWER
    # The same name in another organization is another identity: not registered there.
    with pytest.raises(Unauthenticated):
        await authenticate(svc, "alice", made.private_key, org="rival")
    with pytest.raises(Conflict):
        await chef_keys.add_key(svc, "acme", "alice", "alice@acme.test")
    with pytest.raises(NotFound):
        await chef_keys.add_key(svc, "acme", "bob", "bob@acme.test")
    with pytest.raises(Invalid):
        await chef_keys.add_key(svc, "acme", "bad/name", "alice@acme.test")
    # A demoted member never signs above the membership, whatever the key says.
    as_user = await chef_keys.add_key(svc, "acme", "alice.u", "alice@acme.test", role=Role.USER)
    assert as_user.private_key is not None
    assert await authenticate(svc, "alice.u", as_user.private_key) is Role.USER
    await accounts.create_user(svc, "acme", "alice@acme.test", Role.VIEWER)
    assert await authenticate(svc, "alice", made.private_key) is Role.VIEWER
    assert await authenticate(svc, "alice.u", as_user.private_key) is Role.VIEWER
    await chef_keys.remove_key(svc, "acme", "alice")
    with pytest.raises(Unauthenticated):
        await authenticate(svc, "alice", made.private_key)
    with pytest.raises(NotFound):
        await chef_keys.remove_key(svc, "acme", "alice")
    assert [k.name for k in await chef_keys.list_keys(svc, "acme")] == ["alice.ro", "alice.u"]
