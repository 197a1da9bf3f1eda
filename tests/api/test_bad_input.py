"""Bad input answers 4xx problem+json with a message that says what to fix, and changes
nothing in the database."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from jobyard.api.app import create_app
from jobyard.domain.accounts import Role
from jobyard.service.context import Services
from tests.api.conftest import snapshot
from tests.conftest import Account, Factory

GOOD = {"command": "uptime", "nodes": ["web1"]}
JSON_HEADERS = {"Content-Type": "application/json"}


def check_problem(r: httpx.Response, status: int, *words: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json", r.headers
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["title"] and body["type"] == "about:blank"
    for word in words:
        assert word in body["detail"], (word, body["detail"])
    return body


@pytest.fixture
async def job_id(client: httpx.AsyncClient, admin: Account) -> int:
    r = await client.post("/api/v1/jobs", json={**GOOD, "draft": True}, headers=admin.headers)
    assert r.status_code == 201
    return int(r.json()["id"])


BAD_BODIES: list[tuple[str, Any, int, tuple[str, ...]]] = [
    # (name, raw body or JSON value, status, words in the detail)
    ("malformed", b'{"command": "x",', 400, ("not valid JSON", "at character")),
    ("not utf-8", b"\xff\xfe{}", 400, ("not valid JSON",)),
    ("trailing garbage", b'{"command": "x", "nodes": ["a"]} x', 400, ("not valid JSON",)),
    ("array", [GOOD], 422, ("JSON object",)),
    ("string", "uptime", 422, ("JSON object",)),
    ("null", None, 422, ("JSON object",)),
    ("empty", b"", 422, ("needs a JSON body",)),
    ("command not a string", {**GOOD, "command": 5}, 422, ("command",)),
    ("nodes not a list", {**GOOD, "nodes": "web1"}, 422, ("nodes",)),
    ("node not a string", {**GOOD, "nodes": [1]}, 422, ("nodes.0",)),
    ("quorum a float", {**GOOD, "quorum": 0.5}, 422, ("quorum",)),
    ("quorum a bool", {**GOOD, "quorum": True}, 422, ("quorum",)),
    ("quorum words", {**GOOD, "quorum": "most"}, 422, ("quorum 'most'",)),
    ("quorum over 100%", {**GOOD, "quorum": "150%"}, 422, ("between 0% and 100%",)),
    ("quorum over nodes", {**GOOD, "quorum": 2}, 422, ("more than the 1 target nodes",)),
    ("quorum negative", {**GOOD, "quorum": -1}, 422, ("negative",)),
    ("run_timeout a string", {**GOOD, "run_timeout": "60"}, 422, ("run_timeout",)),
    ("run_timeout zero", {**GOOD, "run_timeout": 0}, 422, ("run_timeout",)),
    ("run_timeout huge", {**GOOD, "run_timeout": 10**30}, 422, ("run_timeout",)),
    ("unknown field", {**GOOD, "colour": "red"}, 422, ("unknown field 'colour'",)),
    ("unknown nested field", {"command": "x", "target": {"hosts": ["a"]}}, 422, ("target.hosts",)),
    ("missing command", {"nodes": ["web1"]}, 422, ("needs a command",)),
    ("blank command", {**GOOD, "command": "  "}, 422, ("needs a command",)),
    ("command and argv", {**GOOD, "argv": ["ls"]}, 422, ("not both",)),
    ("missing target", {"command": "x"}, 422, ("target",)),
    ("two targets", {**GOOD, "tags": ["web"]}, 422, ("only one",)),
    ("nested and flat", {**GOOD, "target": {"tags": ["x"]}}, 422, ("nested",)),
    ("bad node name", {**GOOD, "nodes": ["a b"]}, 422, ("not a node name",)),
    ("duplicate node", {**GOOD, "nodes": ["a", "a"]}, 422, ("twice",)),
    ("bad env name", {**GOOD, "env": {"A-B": "x"}}, 422, ("environment variable",)),
    ("env value not a string", {**GOOD, "env": {"A": 1}}, 422, ("env.A",)),
    ("NUL in command", {**GOOD, "command": "a\x00b"}, 422, ("NUL",)),
    ("name too long", {**GOOD, "name": "x" * 201}, 422, ("name",)),
    ("draft not a bool", {**GOOD, "draft": "yes"}, 422, ("draft",)),
    ("count zero", {"command": "x", "tags": ["w"], "count": 0}, 422, ("at least 1",)),
    ("no node has the tags", {"command": "x", "tags": ["nowhere"]}, 422, ("no node matches",)),
]


@pytest.mark.parametrize(
    ("name", "body", "status", "words"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES]
)
async def test_bad_job_bodies_change_nothing(
    client: httpx.AsyncClient,
    admin: Account,
    svc: Services,
    name: str,
    body: Any,
    status: int,
    words: tuple[str, ...],
) -> None:
    before = await snapshot(svc)
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = await client.post("/api/v1/jobs", content=raw, headers={**admin.headers, **JSON_HEADERS})
    problem = check_problem(r, status, *words)
    if status == 422:
        assert problem["errors"] and all("field" in e and e["message"] for e in problem["errors"])
    assert await snapshot(svc) == before


async def test_bad_updates_change_nothing(
    client: httpx.AsyncClient, admin: Account, svc: Services, job_id: int
) -> None:
    before = await snapshot(svc)
    for method, body, status, word in [
        ("PATCH", {"quorum": "lots"}, 422, "quorum"),
        ("PATCH", {"id": 7}, 422, "unknown field 'id'"),
        ("PATCH", {"command": ["ls"]}, 422, "command"),
        ("PATCH", {"nodes": ["a"], "cluster": "c"}, 422, "only one"),
        ("PUT", {"command": "x"}, 422, "target"),
        ("PUT", {"nodes": ["a"]}, 422, "command"),
    ]:
        r = await client.request(method, f"/api/v1/jobs/{job_id}", json=body, headers=admin.headers)
        check_problem(r, status, word)
    r = await client.post(f"/api/v1/jobs/{job_id}/stop", json={"reason": 5}, headers=admin.headers)
    check_problem(r, 422, "reason")
    assert await snapshot(svc) == before


async def big_chunks(size: int) -> AsyncIterator[bytes]:
    """A JSON body of about ``size`` bytes, sent without Content-Length (chunked)."""
    payload = json.dumps({**GOOD, "description": "x" * size}).encode()
    for i in range(0, len(payload), 65536):
        yield payload[i : i + 65536]


@pytest.mark.parametrize("path", ["/api/v1/jobs", "/api/v1/jobs/{id}/stop", "/api/v1/tokens"])
async def test_bodies_over_one_mib_answer_413(
    client: httpx.AsyncClient, admin: Account, svc: Services, job_id: int, path: str
) -> None:
    url = path.format(id=job_id)
    before = await snapshot(svc)
    big = json.dumps({**GOOD, "description": "x" * (1 << 20)}).encode()
    r = await client.post(url, content=big, headers={**admin.headers, **JSON_HEADERS})
    check_problem(r, 413, "1048576-byte limit")
    r = await client.post(
        url, content=big_chunks(1 << 20), headers={**admin.headers, **JSON_HEADERS}
    )
    assert r.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in r.request.headers
    check_problem(r, 413, "1048576-byte limit")
    assert await snapshot(svc) == before


async def test_a_body_just_under_the_limit_is_read(
    client: httpx.AsyncClient, admin: Account
) -> None:
    # The description field caps at 10,000 characters, so the size alone is not the issue:
    # the body is read and validated (422), not refused as too large.
    body = json.dumps({**GOOD, "description": "x" * 1_000_000}).encode()
    assert len(body) < 1 << 20
    r = await client.post(
        "/api/v1/jobs", content=body_chunks(body), headers={**admin.headers, **JSON_HEADERS}
    )
    check_problem(r, 422, "description")


async def body_chunks(body: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(body), 65536):
        yield body[i : i + 65536]


async def test_json_without_content_type_is_read(client: httpx.AsyncClient, admin: Account) -> None:
    r = await client.post("/api/v1/jobs", content=json.dumps(GOOD).encode(), headers=admin.headers)
    assert "content-type" not in r.request.headers
    assert r.status_code == 201, r.text
    assert r.json()["command"] == "uptime"
    r = await client.post("/api/v1/jobs", content=b"{oops", headers=admin.headers)
    check_problem(r, 400, "not valid JSON")


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
async def test_json_declared_as_something_else_says_what_to_send(
    client: httpx.AsyncClient, admin: Account, svc: Services, content_type: str
) -> None:
    before = await snapshot(svc)
    r = await client.post(
        "/api/v1/jobs",
        content=json.dumps(GOOD).encode(),
        headers={**admin.headers, "Content-Type": content_type},
    )
    check_problem(r, 415, "Content-Type: application/json", content_type)
    assert await snapshot(svc) == before


async def test_json_content_type_variants_are_json(
    client: httpx.AsyncClient, admin: Account
) -> None:
    for content_type in ("application/json; charset=utf-8", "application/problem+json"):
        r = await client.post(
            "/api/v1/jobs",
            content=json.dumps(GOOD).encode(),
            headers={**admin.headers, "Content-Type": content_type},
        )
        assert r.status_code == 201, (content_type, r.text)


QUERY_CASES = [
    ("page_size=101", "page_size must be 1 to 100"),
    ("page_size=0", "page_size must be 1 to 100"),
    ("page_size=-5", "page_size"),
    ("page_size=ten", "page_size"),
    ("page=0", "page starts at 1"),
    ("page=99999999999999999999999999", "page must be at most"),
    ("status=finished", "unknown status 'finished'"),
    ("sort=colour", "sort by one of"),
    ("sort=-command", "sort by one of"),
    ("owner=bob", "not a user id"),
    ("owner=%C2%B2", "not a user id"),
    ("owner=99999999999999999999999", "not a user id"),
    ("created_after=yesterday", "created_after must be an ISO 8601 time"),
    ("created_before=2026-13-01", "created_before must be an ISO 8601 time"),
    ("updated_after=2026-01-01T25:00", "updated_after"),
    ("updated_before=%00", "updated_before"),
]


@pytest.mark.parametrize(("query", "word"), QUERY_CASES, ids=[q for q, _ in QUERY_CASES])
async def test_bad_list_queries(
    client: httpx.AsyncClient, admin: Account, svc: Services, query: str, word: str
) -> None:
    before = await snapshot(svc)
    r = await client.get(f"/api/v1/jobs?{query}", headers=admin.headers)
    check_problem(r, 422, word)
    assert await snapshot(svc) == before


@pytest.mark.parametrize(
    "bad_id", ["abc", "-1", "1.5", "99999999999999999999", "9223372036854775808", "%C2%B2", "0x10"]
)
async def test_bad_ids(
    client: httpx.AsyncClient, admin: Account, svc: Services, job_id: int, bad_id: str
) -> None:
    before = await snapshot(svc)
    for method, path in [
        ("GET", "/api/v1/jobs/{}"),
        ("PATCH", "/api/v1/jobs/{}"),
        ("DELETE", "/api/v1/jobs/{}"),
        ("POST", "/api/v1/jobs/{}/stop"),
        ("POST", "/api/v1/jobs/{}/submit"),
        ("GET", "/api/v1/jobs/{}/history"),
        ("GET", "/api/v1/jobs/{}/runs"),
        ("DELETE", "/api/v1/tokens/{}"),
        ("DELETE", "/api/v1/members/{}"),
    ]:
        kwargs: dict[str, Any] = {"json": {"name": "x"}} if method == "PATCH" else {}
        r = await client.request(method, path.format(bad_id), headers=admin.headers, **kwargs)
        assert 400 <= r.status_code < 500, (method, path, bad_id, r.status_code, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    # The biggest id both databases hold is fine: it just does not exist.
    r = await client.get("/api/v1/jobs/9223372036854775807", headers=admin.headers)
    check_problem(r, 404, "no job")
    r = await client.delete("/api/v1/tokens/9223372036854775807", headers=admin.headers)
    check_problem(r, 404, "no token")
    assert await snapshot(svc) == before


async def test_unknown_routes_and_methods(client: httpx.AsyncClient, admin: Account) -> None:
    check_problem(await client.get("/api/v1/nothing", headers=admin.headers), 404, "no route")
    check_problem(await client.put("/api/v1/jobs", headers=admin.headers), 405, "PUT")


async def test_bad_token_bodies(client: httpx.AsyncClient, admin: Account, svc: Services) -> None:
    before = await snapshot(svc)
    for body, status, word in [
        ({"name": ""}, 422, "name"),
        ({"role": "root"}, 422, "unknown role"),
        ({"expires_at": "soon"}, 422, "expires_at"),
        ({"expires_at": "2020-01-01T00:00:00Z"}, 422, "in the future"),
        ({"expires_at": "2099-01-01T00:00:00"}, 422, "time zone"),
        ({"email": "not-an-email"}, 422, "not an email"),
        ({"scope": "all"}, 422, "unknown field"),
    ]:
        r = await client.post("/api/v1/tokens", json=body, headers=admin.headers)
        check_problem(r, status, word)
    for body, word in [
        ({"email": "x@y.z"}, "role"),
        ({"email": "x@y.z", "role": "boss"}, "unknown role"),
        ({"email": "x@y.z", "role": "agent"}, "agent is a token role"),
        ({"email": "nope", "role": "user"}, "not an email"),
        ({"email": "x@y.z", "role": "user", "password": "short"}, "at least 8"),
    ]:
        r = await client.post("/api/v1/members", json=body, headers=admin.headers)
        check_problem(r, 422, word)
    assert await snapshot(svc) == before


async def test_values_the_database_cannot_hold(any_svc: Services) -> None:
    """On SQLite and on PostgreSQL (which refuses NUL characters in text and numbers over
    its column sizes): 4xx, and nothing written."""
    factory = Factory(any_svc)
    org = await factory.org()
    admin = await factory.account(org, Role.ADMIN)
    app = create_app(services=any_svc, migrate=False, run_loops=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        draft = await client.post(
            "/api/v1/jobs", json={**GOOD, "draft": True}, headers=admin.headers
        )
        assert draft.status_code == 201
        before = await snapshot(any_svc)
        for method, url, body in [
            ("POST", "/api/v1/jobs", {**GOOD, "name": "a\x00b"}),
            ("POST", "/api/v1/jobs", {**GOOD, "description": "\x00"}),
            ("POST", "/api/v1/jobs", {**GOOD, "dir": "/tmp/\x00"}),
            ("PATCH", f"/api/v1/jobs/{draft.json()['id']}", {"description": "x\x00"}),
            ("POST", "/api/v1/jobs", {"command": "x", "tags": ["w"], "count": 10**30}),
            ("POST", "/api/v1/clusters", {"name": "c", "time_to_idle": 2**40}),
            ("POST", "/api/v1/clusters", {"name": "c\x00"}),
            ("GET", "/api/v1/jobs/by-name/a%00b", None),
        ]:
            r = await client.request(method, url, json=body, headers=admin.headers)
            assert 400 <= r.status_code < 500, (method, url, body, r.status_code, r.text)
            assert r.headers["content-type"] == "application/problem+json"
        r = await client.get("/api/v1/jobs?name=%00&search=%00", headers=admin.headers)
        assert r.status_code < 500, r.text
        assert await snapshot(any_svc) == before
