"""`jobyard admin backup` and `restore`: a copy taken while serving serves the same jobs."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.procs import Server, bootstrap_admin, run_cli

pytestmark = pytest.mark.e2e


def _make_jobs(server: Server, token: str, n: int = 3) -> list[dict[str, Any]]:
    with server.client(token) as http:
        for i in range(n):
            made = http.post(
                "/api/v1/jobs",
                json={"name": f"backup-{i}", "command": f"echo {i}", "count": 1, "draft": True},
            )
            assert made.status_code == 201, made.text
        listed = http.get("/api/v1/jobs", params={"sort": "id"}).json()["results"]
    return [{k: job[k] for k in ("id", "name", "status", "command")} for job in listed]


def _jobs(server: Server, token: str) -> list[dict[str, Any]]:
    with server.client(token) as http:
        listed = http.get("/api/v1/jobs", params={"sort": "id"})
        assert listed.status_code == 200, listed.text
    return [
        {k: job[k] for k in ("id", "name", "status", "command")} for job in listed.json()["results"]
    ]


def test_sqlite_backup_while_serving_restores_into_a_new_data_dir(tmp_path: Path) -> None:
    backup_file = tmp_path / "backups" / "jobyard.backup"
    with Server(tmp_path / "a") as server:
        _, _, token = bootstrap_admin(server)
        before = _make_jobs(server, token)
        done = run_cli("admin", "backup", str(backup_file), *server.db_args, check=True)
        assert "backup written" in done.stdout
        # The server keeps working while and after the copy is taken.
        assert _jobs(server, token) == before
        again = run_cli("admin", "backup", str(backup_file), *server.db_args)
        assert again.returncode != 0 and "exists" in again.stderr

    fresh = tmp_path / "b"
    restored = run_cli("admin", "restore", str(backup_file), "--data-dir", str(fresh), check=True)
    assert "restored" in restored.stdout
    with Server(fresh) as server:
        assert _jobs(server, token) == before


def test_restore_refuses_an_existing_database_without_force_and_a_foreign_file(
    tmp_path: Path,
) -> None:
    backup_file = tmp_path / "jobyard.backup"
    with Server(tmp_path / "a") as server:
        _, _, token = bootstrap_admin(server)
        before = _make_jobs(server, token, 2)
        run_cli("admin", "backup", str(backup_file), *server.db_args, check=True)
        _make_jobs(server, token, 1)

    target = tmp_path / "a"
    refused = run_cli("admin", "restore", str(backup_file), "--data-dir", str(target))
    assert refused.returncode != 0 and "--force" in refused.stderr

    foreign = tmp_path / "notes.db"
    foreign.write_bytes(b"not a database at all" * 100)
    bad = run_cli("admin", "restore", str(foreign), "--data-dir", str(tmp_path / "c"))
    assert bad.returncode != 0 and "Traceback" not in bad.stderr

    run_cli("admin", "restore", str(backup_file), "--data-dir", str(target), "--force", check=True)
    assert (target / "jobyard.db.before-restore").exists()
    with Server(target) as server:
        assert _jobs(server, token) == before


@pytest.mark.skipif(shutil.which("pg_dump") is None, reason="pg_dump is not installed")
def test_postgresql_backup_round_trip(tmp_path: Path, pg_blank_url: str, pg_url: str) -> None:
    backup_file = tmp_path / "pg.backup"
    with Server(tmp_path / "a", database_url=pg_url) as server:
        _, _, token = bootstrap_admin(server)
        before = _make_jobs(server, token)
        run_cli("admin", "backup", str(backup_file), *server.db_args, check=True)
    run_cli("admin", "restore", str(backup_file), "--database-url", pg_blank_url, check=True)
    with Server(tmp_path / "b", database_url=pg_blank_url) as server:
        assert _jobs(server, token) == before
