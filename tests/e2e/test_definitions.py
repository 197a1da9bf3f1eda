"""Definitions as files: `jobyard apply` and `jobyard export` against a real server."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
import yaml

from tests.e2e.procs import Server, bootstrap_admin, run_cli
from tests.web.dashboard import csrf_of

pytestmark = pytest.mark.e2e

OPS = """\
schedules:
  - name: hourly
    period: 3600
tasks:
  - name: deploy
    command: ./deploy.sh
    target: {nodes: [web1]}
    arguments: [env]
  - name: notify
    command: echo done
    target: {nodes: [web1]}
stacks:
  - name: release
    target: {nodes: [web1]}
    steps:
      - task: deploy
        arguments: {env: prod}
      - task: notify
triggers:
  - name: every-hour
    schedule: hourly
    task: notify
    enabled: false
"""


def _cli(server: Server, token: str, *args: str) -> tuple[int, str]:
    env = {"JOBYARD_URL": server.url, "JOBYARD_TOKEN": token, "NO_COLOR": "1", "COLUMNS": "200"}
    done = run_cli(*args, env=env)
    return done.returncode, done.stdout + done.stderr


def _names(server: Server, token: str, kind: str) -> list[str]:
    with server.client(token) as api:
        return sorted(i["name"] for i in api.get(f"/api/v1/{kind}").json()["results"])


def test_apply_plan_dry_run_prune_and_export_round_trip(tmp_path: Path) -> None:
    files = tmp_path / "defs"
    files.mkdir()
    (files / "ops.yaml").write_text(OPS)
    with Server(tmp_path / "server") as server:
        org, _, token = bootstrap_admin(server)

        code, out = _cli(server, token, "apply", "-f", str(files), "--dry-run")
        assert code == 0, out
        assert "+ task deploy" in out and "+ trigger every-hour" in out
        assert "plan: 5 to create" in out and "nothing changed" in out
        assert _names(server, token, "tasks") == []

        code, out = _cli(server, token, "apply", "-f", str(files))
        assert code == 0, out
        assert _names(server, token, "tasks") == ["deploy", "notify"]
        assert _names(server, token, "triggers") == ["every-hour"]
        code, out = _cli(server, token, "apply", "-f", str(files))
        assert code == 0 and "no changes" in out, out

        # A change made by hand shows as a field-by-field diff and is put back.
        with server.client(token) as api:
            task = api.get("/api/v1/tasks/by-name/deploy").json()
            api.patch(f"/api/v1/tasks/{task['id']}", json={"command": "./by-hand.sh"})
        code, out = _cli(server, token, "apply", "-f", str(files), "--dry-run")
        assert "~ task deploy" in out and "'./by-hand.sh' -> './deploy.sh'" in out, out
        _cli(server, token, "apply", "-f", str(files))
        with server.client(token) as api:
            assert api.get("/api/v1/tasks/by-name/deploy").json()["command"] == "./deploy.sh"

        # Export, then apply the export: nothing to do.
        exported = tmp_path / "export.yaml"
        code, out = _cli(server, token, "export", "-o", str(exported))
        assert code == 0, out
        document = yaml.safe_load(exported.read_text())
        assert [t["name"] for t in document["tasks"]] == ["deploy", "notify"]
        assert document["triggers"][0]["schedule"] == "hourly"
        assert document["stacks"][0]["steps"][0]["task"] == "deploy"
        code, out = _cli(server, token, "apply", "-f", str(exported))
        assert code == 0 and "no changes" in out, out

        # A definition made by hand is never pruned; one the files dropped is.
        with server.client(token) as api:
            made = api.post(
                "/api/v1/tasks",
                json={"name": "by-hand", "command": "true", "target": {"nodes": ["web1"]}},
            )
            assert made.status_code == 201, made.text
        fewer = OPS.split("triggers:")[0]
        (files / "ops.yaml").write_text(fewer)
        code, out = _cli(server, token, "apply", "-f", str(files), "--prune")
        assert code == 0, out
        assert "- trigger every-hour" in out and "by-hand" not in out
        assert _names(server, token, "triggers") == []
        assert "by-hand" in _names(server, token, "tasks")

        # The dashboard marks what files manage, and only that.
        server.admin(
            "create-user",
            "--org",
            org,
            "--email",
            "eve@acme.test",
            "--role",
            "viewer",
            "--password",
            "correct horse",
        )
        with httpx.Client(base_url=server.url) as browser:
            form = browser.get("/login")
            signed = browser.post(
                "/login",
                data={
                    "email": "eve@acme.test",
                    "password": "correct horse",
                    "csrf_token": csrf_of(form.text),
                },
            )
            assert signed.status_code == 303, signed.text
            page = browser.get("/tasks").text
        rows = {
            name: row for name, row in re.findall(r'<tr data-task="([^"]+)">(.*?)</tr>', page, re.S)
        }
        assert "managed by files" in rows["deploy"]
        assert "managed by files" not in rows["by-hand"]
        with server.client(token) as api:
            managed = api.get("/api/v1/definitions/managed", params={"kind": "tasks"}).json()
        assert sorted(m["key"] for m in managed) == ["deploy", "notify"]


def test_a_bad_file_names_the_file_the_line_and_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks:\n  - name: deploy\n    command: ./d.sh\n    run_timeout: soon\n")
    code, out = _cli(Server(tmp_path / "nowhere"), "t", "apply", "-f", str(bad))
    assert code == 2
    assert f"{bad}:4" in out and "tasks[0].run_timeout" in out, out
    toml = tmp_path / "bad.toml"
    toml.write_text('[[tasks]]\nname = "x"\n\ncomand = "y"\n')
    code, out = _cli(Server(tmp_path / "nowhere"), "t", "apply", "-f", str(toml))
    assert code == 2 and f"{toml}:4" in out and "comand" in out, out
    twice = tmp_path / "twice.yaml"
    twice.write_text("schedules:\n  - {name: a, period: 60}\n  - {name: a, period: 120}\n")
    code, out = _cli(Server(tmp_path / "nowhere"), "t", "apply", "-f", str(twice))
    assert code == 2 and "defined twice" in out, out


def test_the_schema_is_published(tmp_path: Path) -> None:
    code, out = _cli(Server(tmp_path / "nowhere"), "t", "export", "--schema")
    assert code == 0, out
    schema = yaml.safe_load(out)
    assert schema["title"] == "jobyard definitions"
    assert set(schema["properties"]) == {"schedules", "tasks", "stacks", "triggers", "webhooks"}


SECRET_OPS = """\
tasks:
  - name: deploy
    command: ./deploy.sh
    target: {nodes: [web1]}
    env: {STAGE: prod}
    secret_env: {API_KEY: apply-canary-0c4d}
    arguments:
      - {name: token, secret: true, default: apply-canary-77ab}
"""


def test_export_shows_secrets_as_a_mask_and_applying_it_keeps_them(tmp_path: Path) -> None:
    files = tmp_path / "defs"
    files.mkdir()
    (files / "ops.yaml").write_text(SECRET_OPS)
    with Server(tmp_path / "server") as server:
        _, _, token = bootstrap_admin(server)
        code, out = _cli(server, token, "apply", "-f", str(files))
        assert code == 0, out
        exported = tmp_path / "export.yaml"
        code, out = _cli(server, token, "export", "-o", str(exported))
        assert code == 0, out
        text = exported.read_text()
        assert "apply-canary" not in text
        task = yaml.safe_load(text)["tasks"][0]
        assert task["env"] == {"STAGE": "prod", "API_KEY": "••••"}
        assert task["arguments"][0]["default"] == "••••" and task["arguments"][0]["secret"]
        code, out = _cli(server, token, "apply", "-f", str(exported))
        assert code == 0 and "no changes" in out, out
        with server.client(token) as api:
            stored = api.get("/api/v1/tasks/by-name/deploy").json()
        assert stored["secret_env"] == ["API_KEY"]
        assert stored["arguments"][0]["default"] == "••••"
