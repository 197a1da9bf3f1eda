"""Signed requests through the Chef dialect, and the Chef keys an administrator manages."""

from __future__ import annotations

import datetime as dt
import json

import httpx
import pytest

from jobyard.domain.accounts import Role
from jobyard.domain.dialects import chef_signing
from jobyard.service import chef_keys
from jobyard.service.context import Services
from tests.conftest import Account, Factory
from tests.dialects.chef.signer import signed_headers

BASE = "http://testserver"


def pushy(org: str) -> str:
    return f"/compat/chef/organizations/{org}/pushy"


async def register(svc: Services, account: Account, name: str = "alice", **kw: object) -> str:
    """Register a Chef name for the account with a made key pair; the private key."""
    added = await chef_keys.add_key(svc, account.org, name, account.email, **kw)  # type: ignore[arg-type]
    assert added.private_key is not None
    return added.private_key


async def signed(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    private: str,
    *,
    user: str = "alice",
    body: dict[str, object] | None = None,
    version: str = "1.3",
    timestamp: str | None = None,
    tamper: bytes | None = None,
) -> httpx.Response:
    raw = json.dumps(body).encode() if body is not None else None
    headers = signed_headers(
        user, private, method, BASE + path, body=raw, version=version, timestamp=timestamp
    )
    return await client.request(method, path, content=tamper or raw, headers=headers)


def chef_error(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert list(body) == ["error"] and isinstance(body["error"], list)
    message: str = body["error"][0]
    return message


async def job_count(client: httpx.AsyncClient, account: Account) -> int:
    r = await client.get(f"{pushy(account.org)}/jobs", headers=account.headers)
    return len(r.json())


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.3"])
async def test_a_signed_client_starts_a_job_and_reads_it(
    client: httpx.AsyncClient, admin: Account, svc: Services, version: str
) -> None:
    private = await register(svc, admin)
    job = {"command": "chef-client", "nodes": ["web1", "web2"], "quorum": 1}
    r = await signed(client, "POST", f"{pushy(admin.org)}/jobs", private, body=job, version=version)
    assert r.status_code == 201, r.text
    uri = r.json()["uri"]
    r = await signed(client, "GET", uri.removeprefix(BASE), private, version=version)
    assert r.status_code == 200 and r.json()["command"] == "chef-client"
    assert r.json()["nodes"] == {"new": ["web1", "web2"]}
    # The started job is the member's.
    r = await client.get(f"/api/v1/jobs/{int(r.json()['id'], 16)}", headers=admin.headers)
    assert r.json()["created_by"] == admin.user_id
    r = await signed(client, "GET", f"{pushy(admin.org)}/node_states", private, version=version)
    assert r.status_code == 200 and r.json() == []
    r = await signed(
        client, "GET", f"{pushy(admin.org)}/node_states/web1", private, version=version
    )
    assert r.json() == {"node_name": "web1", "status": "offline", "availability": "unavailable"}


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("tampered_body", "Invalid signature for user or client 'alice'"),
        ("unknown_user", "Failed to authenticate as 'mallory'"),
        ("stale", "Synchronize the clock on your host"),
        ("future", "Synchronize the clock on your host"),
        ("wrong_key", "Invalid signature for user or client 'alice'"),
        ("no_signature", "missing required authentication header(s) 'X-OPS-AUTHORIZATION-1'"),
        ("other_org", "Failed to authenticate as 'alice'"),
        ("removed", "Failed to authenticate as 'alice'"),
    ],
)
async def test_refused_signed_requests_are_401_and_change_nothing(
    client: httpx.AsyncClient,
    admin: Account,
    svc: Services,
    factory: Factory,
    case: str,
    message: str,
) -> None:
    private = await register(svc, admin)
    path = f"{pushy(admin.org)}/jobs"
    job = {"command": "rm -rf /tmp/x", "nodes": ["web1"]}
    raw = json.dumps(job).encode()
    now = dt.datetime.now(dt.UTC)
    kw: dict[str, object] = {}
    user = "alice"
    if case == "tampered_body":
        kw["tamper"] = raw.replace(b"web1", b"web9")
    elif case == "unknown_user":
        user = "mallory"
    elif case == "stale":
        kw["timestamp"] = (now - dt.timedelta(minutes=16)).strftime("%Y-%m-%dT%H:%M:%SZ")
    elif case == "future":
        kw["timestamp"] = (now + dt.timedelta(minutes=16)).strftime("%Y-%m-%dT%H:%M:%SZ")
    elif case == "wrong_key":
        private = chef_signing.new_key_pair()[0]
    elif case == "other_org":
        other = await factory.org()
        await factory.account(other, Role.ADMIN)
        path = f"{pushy(other)}/jobs"
    elif case == "removed":
        await chef_keys.remove_key(svc, admin.org, "alice")
    if case == "no_signature":
        headers = signed_headers("alice", private, "POST", BASE + path, body=raw)
        headers = {k: v for k, v in headers.items() if not k.startswith("X-Ops-Authorization")}
        r = await client.post(path, content=raw, headers=headers)
    else:
        r = await signed(client, "POST", path, private, user=user, body=job, **kw)  # type: ignore[arg-type]
    assert message in chef_error(r, 401)
    assert r.headers["www-authenticate"] == chef_signing.CHALLENGE
    assert await job_count(client, admin) == 0


async def test_unsupported_protocol_version_is_400(
    client: httpx.AsyncClient, admin: Account, svc: Services
) -> None:
    private = await register(svc, admin)
    path = f"{pushy(admin.org)}/jobs"
    raw = json.dumps({"command": "x", "nodes": ["a"]}).encode()
    headers = signed_headers("alice", private, "POST", BASE + path, body=raw)
    headers["X-Ops-Sign"] = "algorithm=sha1;version=1.2"
    r = await client.post(path, content=raw, headers=headers)
    assert "Unsupported authentication protocol version" in chef_error(r, 400)
    assert await job_count(client, admin) == 0


async def test_a_signed_viewer_reads_but_cannot_start(
    client: httpx.AsyncClient, admin: Account, svc: Services, factory: Factory
) -> None:
    viewer = await factory.account(admin.org, Role.VIEWER)
    private = await register(svc, viewer, "vera")
    r = await signed(client, "GET", f"{pushy(admin.org)}/jobs", private, user="vera")
    assert r.status_code == 200
    job = {"command": "x", "nodes": ["a"]}
    r = await signed(client, "POST", f"{pushy(admin.org)}/jobs", private, user="vera", body=job)
    chef_error(r, 403)
    # An admin's name registered with a narrower role signs with that role.
    narrow = await register(svc, admin, "readonly", role=Role.VIEWER)
    r = await signed(client, "POST", f"{pushy(admin.org)}/jobs", narrow, user="readonly", body=job)
    chef_error(r, 403)
    assert await job_count(client, admin) == 0


async def test_tokens_keep_working_beside_signing(
    client: httpx.AsyncClient, admin: Account, svc: Services
) -> None:
    await register(svc, admin)
    r = await client.post(
        f"{pushy(admin.org)}/jobs", json={"command": "x", "nodes": ["a"]}, headers=admin.headers
    )
    assert r.status_code == 201
    r = await client.get(f"{pushy(admin.org)}/jobs")
    assert r.status_code == 401 and r.headers["www-authenticate"] == chef_signing.CHALLENGE


# -- the keys, through the native API


async def test_chef_keys_api_is_for_admins_of_the_organization(
    client: httpx.AsyncClient, admin: Account, svc: Services, factory: Factory
) -> None:
    user = await factory.account(admin.org, Role.USER)
    r = await client.post(
        "/api/v1/chef-keys", json={"name": "bob", "email": user.email}, headers=admin.headers
    )
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["name"] == "bob" and made["email"] == user.email and made["role"] is None
    assert made["private_key"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert made["public_key"].startswith("-----BEGIN PUBLIC KEY-----")
    # The made key signs for bob at once; the private key is never shown again.
    r = await signed(client, "GET", f"{pushy(admin.org)}/jobs", made["private_key"], user="bob")
    assert r.status_code == 200
    r = await client.get("/api/v1/chef-keys", headers=admin.headers)
    assert [k["name"] for k in r.json()] == ["bob"] and "private_key" not in r.json()[0]
    # Register a public key someone made elsewhere (knife user key create, openssl ...).
    private, public = chef_signing.new_key_pair()
    body = {"name": "ci-runner.example.com", "email": user.email, "public_key": public}
    r = await client.post("/api/v1/chef-keys", json=body, headers=admin.headers)
    assert r.status_code == 201 and "private_key" not in r.json()
    r = await signed(
        client, "GET", f"{pushy(admin.org)}/jobs", private, user="ci-runner.example.com"
    )
    assert r.status_code == 200
    # Not an admin: refused. Another organization: sees none of these, cannot remove them.
    r = await client.get("/api/v1/chef-keys", headers=user.headers)
    assert r.status_code == 403
    r = await client.post(
        "/api/v1/chef-keys", json={"name": "me", "email": user.email}, headers=user.headers
    )
    assert r.status_code == 403
    outsider = await factory.account(await factory.org(), Role.ADMIN)
    r = await client.get("/api/v1/chef-keys", headers=outsider.headers)
    assert r.json() == []
    r = await client.delete("/api/v1/chef-keys/bob", headers=outsider.headers)
    assert r.status_code == 404
    r = await client.delete("/api/v1/chef-keys/bob", headers=admin.headers)
    assert r.status_code == 204
    r = await signed(client, "GET", f"{pushy(admin.org)}/jobs", made["private_key"], user="bob")
    assert r.status_code == 401


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"name": "bob", "email": "nobody@example.com"}, 404),
        ({"name": "bad name!", "email": "{email}"}, 422),
        ({"name": "bob", "email": "{email}", "public_key": "not a pem"}, 422),
        ({"name": "bob", "email": "{email}", "role": "root"}, 422),
        ({"name": "bob", "email": "{email}", "extra": 1}, 422),
        ({"name": "taken", "email": "{email}"}, 409),
    ],
)
async def test_bad_chef_key_requests_change_nothing(
    client: httpx.AsyncClient,
    admin: Account,
    svc: Services,
    body: dict[str, object],
    status: int,
) -> None:
    await register(svc, admin, "taken")
    body = {k: (admin.email if v == "{email}" else v) for k, v in body.items()}
    r = await client.post("/api/v1/chef-keys", json=body, headers=admin.headers)
    assert r.status_code == status, r.text
    r = await client.get("/api/v1/chef-keys", headers=admin.headers)
    assert [k["name"] for k in r.json()] == ["taken"]
