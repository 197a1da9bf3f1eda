"""File names outside Latin-1 download intact through every route (RFC 6266/5987
Content-Disposition); names with control characters or separators are refused at upload."""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from jobyard.domain.accounts import Role
from jobyard.domain.dialects import rescale
from jobyard.domain.errors import Invalid
from jobyard.domain.jobs import JobStatus, NodeRunStatus
from jobyard.domain.records import Principal
from jobyard.service import outputs
from jobyard.service.context import Services
from tests.conftest import Account
from tests.dialects.conftest import add_file, add_node, drive
from tests.dialects.rescale.test_rescale_seed import API, create, token

NAMES = ["日本語.txt", "🙂.log", "a\u202eb.txt", 'plain "quoted";%.txt']
BAD = ["a\r\nb.txt", "a\x00b.txt", "tab\there.txt", "del\x7f.txt", "c1\x85.txt", "ls\u2028.txt"]
STAR = re.compile(r"filename\*=UTF-8''([^;\s]+)$")
FALLBACK = re.compile(r'^attachment; filename="([ -~]*)"; ')


def _downloaded_as(r: httpx.Response, data: bytes) -> str:
    assert r.status_code == 200, r.text
    assert r.content == data
    header = r.headers["content-disposition"]
    assert header.isascii(), header
    fallback = FALLBACK.match(header)
    assert fallback and '"' not in fallback.group(1) and "\\" not in fallback.group(1), header
    star = STAR.search(header)
    assert star, header
    return unquote(star.group(1), encoding="utf-8", errors="strict")


def _multipart(name: str, data: bytes) -> dict[str, Any]:
    """A multipart body whose part names the file exactly (no client-side escaping)."""
    boundary = "b0undary"
    disposition = f'form-data; name="file"; filename="{name}"'.encode()
    body = b"".join(
        [
            f"--{boundary}\r\n".encode(),
            b"Content-Disposition: " + disposition + b"\r\n",
            b"Content-Type: application/octet-stream\r\n\r\n",
            data,
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )
    return {
        "content": body,
        "headers_extra": {"Content-Type": f"multipart/form-data; boundary={boundary}"},
    }


async def _running_job(client: httpx.AsyncClient, admin: Account, svc: Services) -> int:
    await add_node(svc, admin.org, "n1")
    job = await create(client, admin)
    r = await client.post(f"{API}/jobs/{job['id']}/submit/", headers=token(admin))
    assert r.status_code == 200, r.text
    native = rescale.parse_id(job["id"])
    assert native
    S = NodeRunStatus
    await drive(svc, native, job=[JobStatus.VOTING], runs={"n1": [S.READY]})
    await drive(svc, native, job=[JobStatus.RUNNING], runs={"n1": [S.RUNNING]})
    return native


@pytest.mark.parametrize("name", NAMES)
async def test_uploaded_input_files_download_under_their_exact_name(
    client: httpx.AsyncClient, admin: Account, name: str
) -> None:
    data = name.encode()
    # Native, raw body named by ?name= and multipart; Rescale, multipart. (Multipart
    # filenames are sent raw, as UTF-8, the way browsers send them.)
    raw = await client.post(
        "/api/v1/files", params={"name": name}, content=data, headers=admin.headers
    )
    multi = await _post(client, "/api/v1/files", name, admin.headers, data)
    resc = await _post(client, f"{API}/files/contents/", name, token(admin), data)
    for r in (raw, multi, resc):
        assert r.status_code == 201, r.text
        assert r.json()["name"] == name
    for f in (raw.json(), multi.json()):
        r = await client.get(f"/api/v1/files/{f['id']}/contents", headers=admin.headers)
        assert _downloaded_as(r, data) == name
        assert (await client.get(f"/api/v1/files/{f['id']}", headers=admin.headers)).json()[
            "name"
        ] == name
    r = await client.get(resc.json()["downloadUrl"], headers=token(admin))
    assert _downloaded_as(r, data) == name
    rid = rescale.parse_id(resc.json()["id"])
    r = await client.get(f"/api/v1/files/{rid}/contents", headers=admin.headers)
    assert _downloaded_as(r, data) == name


async def test_output_files_download_under_their_exact_name(
    client: httpx.AsyncClient, admin: Account, svc: Services
) -> None:
    native = await _running_job(client, admin, svc)
    ids = {name: await add_file(svc, native, "n1", f"sub/{name}", name.encode()) for name in NAMES}
    listed = (await client.get(f"/api/v1/jobs/{native}/files", headers=admin.headers)).json()
    assert {f["name"] for f in listed} == {f"sub/{n}" for n in NAMES}
    for f in listed:
        r = await client.get(f"/api/v1/files/{f['id']}/contents", headers=admin.headers)
        name = f["name"].removeprefix("sub/")
        assert _downloaded_as(r, name.encode()) == name
    rjob = rescale.render_id(native)
    page = (await client.get(f"{API}/jobs/{rjob}/files/", headers=token(admin))).json()
    assert {f["name"] for f in page["results"]} == set(NAMES)
    for f in page["results"]:
        r = await client.get(f["downloadUrl"], headers=token(admin))
        assert _downloaded_as(r, f["name"].encode()) == f["name"]
        assert rescale.parse_id(f["id"]) == ids[f["name"]]


async def test_agent_uploaded_outputs_keep_their_names_and_refuse_control_characters(
    client: httpx.AsyncClient, admin: Account, svc: Services
) -> None:
    native = await _running_job(client, admin, svc)
    async with svc.db.read() as tx:
        job = await tx.jobs.get_any(native)
    assert job is not None
    agent = Principal(job.org_id, admin.org, admin.user_id, admin.email, "", Role.AGENT)
    for name in NAMES:
        stored = await outputs.store_file(svc, agent, native, job.attempt, "n1", name, b"ok")
        assert stored is not None and stored.name == name
        r = await client.get(f"/api/v1/files/{stored.id}/contents", headers=admin.headers)
        assert _downloaded_as(r, b"ok") == name
    for name in BAD:
        with pytest.raises(Invalid, match="control character"):
            await outputs.store_file(svc, agent, native, job.attempt, "n1", name, b"no")
    listed = (await client.get(f"/api/v1/jobs/{native}/files", headers=admin.headers)).json()
    assert sorted(f["name"] for f in listed) == sorted(NAMES)


@pytest.mark.parametrize("name", [*BAD, "dir/x.txt", "dir\\x.txt"])
async def test_names_with_control_characters_or_separators_are_refused_at_upload(
    client: httpx.AsyncClient, admin: Account, name: str
) -> None:
    attempts = [
        client.post("/api/v1/files", params={"name": name}, content=b"x", headers=admin.headers),
        _post(client, "/api/v1/files", name, admin.headers),
        _post(client, f"{API}/files/contents/", name, token(admin)),
        _post(client, f"{API}/v2/files/contents/", name, token(admin)),
    ]
    for r in await asyncio.gather(*attempts):
        assert r.status_code in (400, 422), (name, r.status_code, r.text)
        # A CR/LF inside a part header ends the header: the body is then unreadable.
        assert "name" in r.text.lower() or "\n" in name, r.text
    assert (await client.get("/api/v1/files", headers=admin.headers)).json()["count"] == 0
    assert (await client.get(f"{API}/files/", headers=token(admin))).json()["count"] == 0


async def _post(
    client: httpx.AsyncClient, url: str, name: str, headers: dict[str, str], data: bytes = b"x"
) -> httpx.Response:
    part = _multipart(name, data)
    return await client.post(
        url, content=part["content"], headers={**headers, **part["headers_extra"]}
    )
