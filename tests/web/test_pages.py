"""Dashboard pages through the ASGI app: sign-in, CSRF, errors in words, jobs, tokens,
members, organizations."""

from __future__ import annotations

import html
import re

import httpx
import pytest

from jobyard.domain.accounts import Role
from jobyard.domain.outputs import OutputCaps
from jobyard.service import accounts, nodes, throttle
from jobyard.service.context import Services
from tests.conftest import Account, Factory
from tests.web.dashboard import csrf_of, sign_in


async def test_pages_redirect_to_sign_in_and_back(
    client: httpx.AsyncClient, admin: Account
) -> None:
    r = await client.get("/jobs?status=active")
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=%2Fjobs%3Fstatus%3Dactive"
    form = await client.get(r.headers["location"])
    assert 'name="next" value="/jobs?status=active"' in form.text
    done = await client.post(
        "/login",
        data={
            "email": admin.email,
            "password": "correct horse",
            "next": "/jobs?status=active",
            "csrf_token": csrf_of(form.text),
        },
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/jobs?status=active"
    cookie = done.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    page = await client.get("/jobs?status=active")
    assert page.status_code == 200
    assert admin.org in page.text


async def test_sign_in_errors_are_words(client: httpx.AsyncClient, admin: Account) -> None:
    form = await client.get("/login")
    wrong = await client.post(
        "/login",
        data={"email": admin.email, "password": "nope", "csrf_token": csrf_of(form.text)},
    )
    assert wrong.status_code == 401
    assert "text/html" in wrong.headers["content-type"]
    assert "wrong email or password" in wrong.text
    assert f'value="{admin.email}"' in wrong.text  # the form keeps what was typed
    forged = await client.post("/login", data={"email": admin.email, "password": "correct horse"})
    assert forged.status_code == 403
    assert "reload the page" in forged.text


async def test_next_never_leaves_the_site(client: httpx.AsyncClient, admin: Account) -> None:
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "jobs"):
        client.cookies.clear()
        form = await client.get("/login")
        done = await client.post(
            "/login",
            data={
                "email": admin.email,
                "password": "correct horse",
                "next": target,
                "csrf_token": csrf_of(form.text),
            },
        )
        assert done.headers["location"] == "/jobs", target


async def test_sign_in_changes_the_session_and_sign_out_ends_it(
    client: httpx.AsyncClient, admin: Account
) -> None:
    form = await client.get("/login")
    before = csrf_of(form.text)
    after = await sign_in(client, admin.email)
    assert after != before  # a new session id at sign-in: no fixation
    out = await client.post("/logout", data={"csrf_token": after})
    assert out.status_code == 303 and out.headers["location"] == "/login?notice=signed_out"
    assert "Max-Age=0" in out.headers["set-cookie"]
    assert (await client.get("/jobs")).status_code == 303


async def test_forms_need_the_csrf_token(client: httpx.AsyncClient, admin: Account) -> None:
    csrf = await sign_in(client, admin.email)
    body = {"command": "uptime", "target_kind": "nodes", "nodes": "web1", "quorum": "100%"}
    refused = await client.post("/jobs", data=body)
    assert refused.status_code == 403
    assert "did not come from this site" in refused.text
    wrong = await client.post("/jobs", data={**body, "csrf_token": csrf[::-1]})
    assert wrong.status_code == 403
    made = await client.post("/jobs", data={**body, "csrf_token": csrf})
    assert made.status_code == 303
    assert re.fullmatch(r"/jobs/\d+", made.headers["location"])


async def test_api_accepts_the_cookie_with_the_csrf_header(
    client: httpx.AsyncClient, admin: Account
) -> None:
    csrf = await sign_in(client, admin.email)
    me = await client.get("/api/v1/me")
    assert me.status_code == 200 and me.json()["user"]["email"] == admin.email
    job = {"command": "uptime", "nodes": ["web1"]}
    refused = await client.post("/api/v1/jobs", json=job)
    assert refused.status_code == 401
    made = await client.post("/api/v1/jobs", json=job, headers={"X-CSRF-Token": csrf})
    assert made.status_code == 201, made.text
    assert made.json()["created_by"] == admin.user_id


async def test_start_a_job_and_see_its_nodes(client: httpx.AsyncClient, admin: Account) -> None:
    csrf = await sign_in(client, admin.email)
    made = await client.post(
        "/jobs",
        data={
            "csrf_token": csrf,
            "command": "echo hello",
            "target_kind": "nodes",
            "nodes": "web1, web2 web3",
            "quorum": "2",
            "run_timeout": "60",
            "name": "greeting",
            "env": "A=1\nB=two words",
            "capture_output": "1",
        },
    )
    assert made.status_code == 303
    page = await client.get(made.headers["location"])
    assert page.status_code == 200
    text = page.text
    assert "greeting" in text and "echo hello" in text
    for node in ("web1", "web2", "web3"):
        assert f'data-node="{node}" data-node-status="new"' in text
    assert 'class="timeline"' in text
    assert "B=two words" in text
    live = await client.get(made.headers["location"], headers={"X-Fragment": "1"})
    assert live.status_code == 200
    assert "<html" not in live.text and 'data-node="web1"' in live.text
    listing = await client.get("/jobs")
    assert "echo hello" in listing.text and "all 3 new" in listing.text


async def test_form_errors_keep_the_values(client: httpx.AsyncClient, admin: Account) -> None:
    csrf = await sign_in(client, admin.email)
    cases = [
        ({"command": "", "nodes": "web1"}, "needs a command", "command"),
        ({"command": "x", "nodes": ""}, "at least one node", "nodes"),
        ({"command": "x", "nodes": "bad/name"}, "is not a node name", "nodes"),
        ({"command": "x", "nodes": "a b", "quorum": "3"}, "more than the 2 target nodes", "quorum"),
        ({"command": "x", "nodes": "a", "run_timeout": "soon"}, "whole number", "run_timeout"),
        ({"command": "x", "nodes": "a", "env": "no equals"}, "NAME=value", "env"),
    ]
    for fields, message, field in cases:
        r = await client.post("/jobs", data={"csrf_token": csrf, "target_kind": "nodes", **fields})
        assert r.status_code == 422, (fields, r.status_code)
        assert message in r.text, (fields, r.text)
        assert re.search(rf'name="{field}"[^>]*aria-invalid="true"', r.text), field
        assert fields["command"] in r.text


async def test_tag_target_without_nodes_is_explained(
    client: httpx.AsyncClient, admin: Account
) -> None:
    csrf = await sign_in(client, admin.email)
    r = await client.post(
        "/jobs",
        data={"csrf_token": csrf, "command": "x", "target_kind": "tags", "tags": "gpu"},
    )
    assert r.status_code == 422
    assert "no node matches" in r.text


async def test_stop_and_delete_from_the_job_page(client: httpx.AsyncClient, admin: Account) -> None:
    csrf = await sign_in(client, admin.email)
    made = await client.post(
        "/jobs",
        data={"csrf_token": csrf, "command": "sleep 100", "target_kind": "nodes", "nodes": "n1"},
    )
    url = made.headers["location"]
    stopped = await client.post(f"{url}/stop", data={"csrf_token": csrf})
    assert stopped.status_code == 303 and stopped.headers["location"] == f"{url}?notice=stopped"
    page = await client.get(stopped.headers["location"])
    assert "The job was stopped." in page.text
    assert 'data-job-status="aborted"' in page.text
    again = await client.post(f"{url}/stop", data={"csrf_token": csrf})
    assert again.status_code == 409 and "has finished already" in again.text
    deleted = await client.post(f"{url}/delete", data={"csrf_token": csrf})
    assert deleted.status_code == 303
    gone = await client.get(url)
    assert gone.status_code == 404
    assert "text/html" in gone.headers["content-type"] and "no job" in gone.text


async def test_drafts_are_submitted_from_their_page(
    client: httpx.AsyncClient, admin: Account
) -> None:
    csrf = await sign_in(client, admin.email)
    made = await client.post(
        "/jobs",
        data={
            "csrf_token": csrf,
            "command": "date",
            "target_kind": "nodes",
            "nodes": "n1",
            "draft": "1",
        },
    )
    url = made.headers["location"]
    page = await client.get(url)
    assert 'data-job-status="draft"' in page.text and "Submit" in page.text
    done = await client.post(f"{url}/submit", data={"csrf_token": csrf})
    assert done.status_code == 303
    assert 'data-job-status="new"' in (await client.get(url)).text


async def test_run_again_copies_the_form(client: httpx.AsyncClient, admin: Account) -> None:
    csrf = await sign_in(client, admin.email)
    made = await client.post(
        "/jobs",
        data={
            "csrf_token": csrf,
            "command": "make deploy",
            "target_kind": "nodes",
            "nodes": "a b",
            "quorum": "50%",
        },
    )
    job_id = made.headers["location"].rsplit("/", 1)[1]
    form = await client.get(f"/jobs/new?again={job_id}")
    assert "make deploy" in form.text and 'value="a b"' in form.text and 'value="50%"' in form.text


async def test_list_filters_search_and_pages(client: httpx.AsyncClient, admin: Account) -> None:
    csrf = await sign_in(client, admin.email)
    for i in range(23):
        await client.post(
            "/api/v1/jobs",
            json={"command": f"task-{i}", "nodes": ["n1"], "name": "nightly" if i < 3 else None},
            headers={"X-CSRF-Token": csrf},
        )
    first = await client.get("/jobs")
    assert first.text.count("data-job-id=") == 20
    assert "23 jobs · page 1 of 2" in first.text
    second = await client.get("/jobs?n=2")
    assert second.text.count("data-job-id=") == 3
    found = await client.get("/jobs?q=task-1")  # task-1 and task-10 .. task-19
    assert found.text.count("data-job-id=") == 11
    named = await client.get("/jobs?q=nightly")
    assert named.text.count("data-job-id=") == 3
    none = await client.get("/jobs?status=complete")
    assert "No job matches these filters." in none.text
    bad = await client.get("/jobs?status=sleeping")
    assert bad.status_code == 422 and "unknown status 'sleeping'" in html.unescape(bad.text)
    past = await client.get("/jobs?n=9")
    assert "past the last job" in past.text


async def test_output_is_read_from_an_offset(
    client: httpx.AsyncClient, admin: Account, svc: Services
) -> None:
    csrf = await sign_in(client, admin.email)
    made = await client.post(
        "/api/v1/jobs", json={"command": "x", "nodes": ["n1"]}, headers={"X-CSRF-Token": csrf}
    )
    job_id = made.json()["id"]
    async with svc.db.begin() as tx:
        run = await tx.jobs.run(job_id, "n1")
        assert run is not None
        await tx.outputs.append(run.id, "stdout", "héllo\n", OutputCaps(1000, 1000))
    full = await client.get(f"/jobs/{job_id}/output/n1/stdout")
    assert full.text == "héllo\n"
    assert full.headers["x-output-length"] == "7" and full.headers["x-output-reset"] == "1"
    async with svc.db.begin() as tx:
        await tx.outputs.append(run.id, "stdout", "world\n", OutputCaps(1000, 1000))
    delta = await client.get(f"/jobs/{job_id}/output/n1/stdout?offset=7")
    assert delta.text == "world\n" and delta.headers["x-output-reset"] == "0"
    assert delta.headers["x-output-length"] == "13"
    beyond = await client.get(f"/jobs/{job_id}/output/n1/stdout?offset=99")
    assert beyond.text == "héllo\nworld\n" and beyond.headers["x-output-reset"] == "1"
    missing = await client.get(f"/jobs/{job_id}/output/n9/stdout")
    assert missing.status_code == 404 and "did not run on node" in missing.text


async def test_viewers_read_but_do_not_start(
    client: httpx.AsyncClient, factory: Factory, admin: Account
) -> None:
    viewer = await factory.account(admin.org, Role.VIEWER)
    csrf = await sign_in(client, viewer.email)
    page = await client.get("/jobs")
    assert "Start a job" not in page.text
    refused = await client.post(
        "/jobs",
        data={"csrf_token": csrf, "command": "x", "target_kind": "nodes", "nodes": "n1"},
    )
    assert refused.status_code == 403
    assert "needs the user role" in refused.text


async def test_other_organizations_jobs_are_not_found(
    client: httpx.AsyncClient, factory: Factory, admin: Account
) -> None:
    other_org = await factory.org()
    other = await factory.account(other_org, Role.ADMIN)
    theirs = await client.post(
        "/api/v1/jobs", json={"command": "x", "nodes": ["n1"]}, headers=other.headers
    )
    await sign_in(client, admin.email)
    r = await client.get(f"/jobs/{theirs.json()['id']}")
    assert r.status_code == 404
    assert "text/html" in r.headers["content-type"]
    assert (await client.get("/jobs/abc")).status_code == 404


async def test_tokens_are_shown_once_and_revoked(client: httpx.AsyncClient, admin: Account) -> None:
    csrf = await sign_in(client, admin.email)
    empty = await client.get("/tokens")
    assert "Your tokens" not in empty.text  # admins see the organization's tokens
    made = await client.post("/tokens", data={"csrf_token": csrf, "name": "laptop", "days": "30"})
    assert made.status_code == 201
    secret = re.search(r'id="new-token" class="secret" readonly value="([^"]+)"', made.text)
    assert secret, made.text
    token = secret.group(1)
    assert token.startswith("jy_")
    api = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 200
    later = await client.get("/tokens")
    assert token not in later.text and "laptop" in later.text
    token_id = re.search(r'data-token-id="(\d+)">\s*<td>laptop', later.text)
    assert token_id
    revoked = await client.post(f"/tokens/{token_id.group(1)}/revoke", data={"csrf_token": csrf})
    assert revoked.status_code == 303
    api = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 401
    bad = await client.post("/tokens", data={"csrf_token": csrf, "name": "x", "days": "-1"})
    assert bad.status_code == 422 and "number of days" in bad.text


async def test_members_are_managed_by_admins_only(
    client: httpx.AsyncClient, factory: Factory, admin: Account
) -> None:
    csrf = await sign_in(client, admin.email)
    added = await client.post(
        "/members",
        data={
            "csrf_token": csrf,
            "email": "new@example.com",
            "role": "viewer",
            "password": "long enough",
        },
    )
    assert added.status_code == 303
    page = await client.get("/members")
    assert 'data-member="new@example.com"' in page.text
    short = await client.post(
        "/members",
        data={"csrf_token": csrf, "email": "x@example.com", "role": "user", "password": "short"},
    )
    assert short.status_code == 422 and "at least 8 characters" in short.text
    client.cookies.clear()
    viewer_csrf = await sign_in(client, "new@example.com", "long enough")
    listing = await client.get("/members")
    assert "Add a member" not in listing.text
    refused = await client.post(
        "/members",
        data={"csrf_token": viewer_csrf, "email": "y@example.com", "role": "admin"},
    )
    assert refused.status_code == 403 and "needs the admin role" in refused.text


async def test_switch_organization(
    client: httpx.AsyncClient, factory: Factory, admin: Account, svc: Services
) -> None:
    second = await factory.org("beta")
    await accounts.create_user(svc, second, admin.email, Role.VIEWER)
    csrf = await sign_in(client, admin.email)
    page = await client.get("/jobs")
    assert 'id="org-select"' in page.text and "beta (viewer)" in page.text
    switched = await client.post("/org", data={"csrf_token": csrf, "org": "beta"})
    assert switched.status_code == 303
    me = await client.get("/api/v1/me")
    assert me.json()["organization"]["name"] == "beta" and me.json()["role"] == "viewer"
    refused = await client.post("/org", data={"csrf_token": csrf, "org": "gamma"})
    assert refused.status_code == 404 and "not a member" in refused.text


async def test_removed_members_are_signed_out(
    client: httpx.AsyncClient, factory: Factory, admin: Account, svc: Services
) -> None:
    user = await factory.account(admin.org, Role.USER)
    await sign_in(client, user.email)
    async with svc.db.begin() as tx:
        org = await tx.accounts.org_by_name(admin.org)
        assert org is not None
        await tx.accounts.delete_membership(org.id, user.user_id)
    assert (await client.get("/jobs")).status_code == 303
    assert (await client.get("/api/v1/me")).status_code == 401


async def test_fleet_pages_have_empty_states(client: httpx.AsyncClient, admin: Account) -> None:
    csrf = await sign_in(client, admin.email)
    assert "No nodes yet." in (await client.get("/nodes")).text
    assert "No clusters in use." in (await client.get("/clusters")).text
    made = await client.post(
        "/clusters", data={"csrf_token": csrf, "name": "batch", "nodes": "2", "type": "production"}
    )
    assert made.status_code == 303
    page = await client.get(made.headers["location"])
    assert "batch" in page.text and 'data-status="pending"' in page.text
    assert "No agent has joined yet" in page.text
    dup = await client.post(
        "/clusters", data={"csrf_token": csrf, "name": "batch", "nodes": "1", "type": "production"}
    )
    assert dup.status_code == 409 and "exists already" in dup.text
    missing = await client.get("/nodes/ghost")
    assert missing.status_code == 404 and "no node named" in missing.text


async def test_pages_carry_security_headers(client: httpx.AsyncClient, admin: Account) -> None:
    await sign_in(client, admin.email)
    page = await client.get("/jobs")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    css = await client.get("/static/app.css")
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]


async def test_password_guessing_is_slowed_down(
    client: httpx.AsyncClient, admin: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(throttle, "_sleep", record)  # the account's backoff, not slept
    form = await client.get("/login")
    token = csrf_of(form.text)
    for _ in range(10):
        wrong = await client.post(
            "/login", data={"email": admin.email, "password": "guess", "csrf_token": token}
        )
        assert wrong.status_code == 401
    limited = await client.post(
        "/login", data={"email": admin.email, "password": "correct horse", "csrf_token": token}
    )
    assert limited.status_code == 429
    assert "too many failed sign-ins" in limited.text
    assert waits  # past a few failures the account's attempts waited before the check


async def test_watch_a_cluster(client: httpx.AsyncClient, admin: Account) -> None:
    csrf = await sign_in(client, admin.email)
    made = await client.post(
        "/clusters", data={"csrf_token": csrf, "name": "gpu", "nodes": "1", "type": "production"}
    )
    url = made.headers["location"]
    assert "Stop watching" in (await client.get(url)).text  # the creator watches it
    await client.post(f"{url}/watch", data={"csrf_token": csrf, "watch": "0"})
    page = await client.get(url)
    assert "Nobody watches this cluster." in page.text and ">Watch<" in page.text


async def test_the_nodes_pages_show_each_nodes_slots(
    client: httpx.AsyncClient, admin: Account, svc: Services, factory: Factory
) -> None:
    agent = await factory.account(admin.org, Role.AGENT)
    who = await accounts.authenticate(svc, agent.token)
    hello = nodes.Hello("wide1", "inc-1", [], None, [], [], False, slots=3)
    await nodes.node_connected(svc, who, hello, "replica")
    await sign_in(client, admin.email)
    listed = await client.get("/nodes")
    assert listed.status_code == 200, listed.text
    row = re.search(r'<tr data-node="wide1">.*?</tr>', listed.text, re.S)
    assert row and "<td>3</td>" in row.group(0), listed.text
    assert "<th>Slots</th>" in listed.text
    one = await client.get("/nodes/wide1")
    assert "3 runs at once" in one.text, one.text
