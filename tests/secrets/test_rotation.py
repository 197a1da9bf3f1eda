"""`jobyard admin rotate-secret-key`: every stored secret re-sealed with a new key in one
transaction, on SQLite (the key file) and PostgreSQL (a configured key)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import orjson
import pytest

from jobyard.domain.secrets import sealed_in
from jobyard.service.context import Services
from jobyard.service.rounds import commit_message
from jobyard.service.secrets import SecretBox, SecretKeyError, key_id, new_key, rotate_key
from tests.conftest import Factory
from tests.secrets.test_job_secrets import CANARY, dump


async def _job_with_secret(sclient: httpx.AsyncClient, sfactory: Factory) -> int:
    admin = await sfactory.account(await sfactory.org("acme"))
    r = await sclient.post(
        "/api/v1/jobs",
        json={"command": "true", "nodes": ["n"], "secret_env": {"T": CANARY}, "draft": True},
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    job_id: int = r.json()["id"]
    return job_id


async def test_rotation_reseals_every_value(
    ssvc: Services, sclient: httpx.AsyncClient, sfactory: Factory
) -> None:
    job_id = await _job_with_secret(sclient, sfactory)
    old_keys = ssvc.secrets.raw_keys(create=False)
    old_id = key_id(old_keys[0])
    assert f":{old_id}:" in await dump(ssvc)
    fresh = new_key() if ssvc.settings.secret_key else None
    if ssvc.settings.secret_key:
        with pytest.raises(Exception, match="give the new key"):
            await rotate_key(ssvc)
    done = await rotate_key(ssvc, fresh)
    assert done.resealed == 1
    rows = await dump(ssvc)
    assert f":{done.key_id}:" in rows and f":{old_id}:" not in rows
    assert CANARY not in rows
    # Only the new key is needed from now on.
    settings = ssvc.settings.replace(secret_key=done.new_key)
    box = SecretBox(settings, sqlite=ssvc.db.is_sqlite)
    async with ssvc.db.read() as tx:
        job = await tx.jobs.get_any(job_id)
    assert job is not None
    assert box.open(sealed_in(job.env)[0]) == CANARY
    if done.key_file is not None:
        assert done.key_file.read_text() == done.new_key + "\n"
    restarted = Services(db=ssvc.db, settings=settings)
    assert orjson.loads(commit_message(restarted, job, "n"))["env"]["T"] == CANARY
    only_old = SecretBox(ssvc.settings.replace(secret_key=old_keys[0].decode()), sqlite=False)
    with pytest.raises(SecretKeyError, match=done.key_id):
        only_old.open(sealed_in(job.env)[0])


def test_rotate_secret_key_command_on_sqlite(tmp_path: Path) -> None:
    """The command a user runs: a data dir's key file is replaced; values stay readable."""
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBYARD_")}
    script = f"""
import asyncio
from jobyard.service.context import Services
from jobyard.settings import Settings
from jobyard.store import Database
from pathlib import Path

async def main():
    settings = Settings(data_dir=Path({str(data)!r}))
    db = Database(settings.db_url)
    await db.migrate()
    svc = Services(db=db, settings=settings)
    sealed = svc.secrets.seal({CANARY!r})
    async with svc.db.begin() as tx:
        await tx.conn.exec_driver_sql(
            "INSERT INTO organizations (name, display_name, created_at) "
            "VALUES ('o', 'o', '2026-01-01 00:00:00')"
        )
        await tx.conn.exec_driver_sql(
            "INSERT INTO jobs (org_id, command, target, quorum, env, status, meta, created_at, "
            "updated_at) VALUES (1, 'true', '{{}}', '100%', ?, 'draft', '{{}}', "
            "'2026-01-01 00:00:00', '2026-01-01 00:00:00')",
            ('{{"T": "' + sealed + '"}}',),
        )
    await db.close()

asyncio.run(main())
"""
    subprocess.run([sys.executable, "-c", script], check=True, env=env)
    before = (data / "secret.key").read_text()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "jobyard",
            "admin",
            "rotate-secret-key",
            "--data-dir",
            str(data),
            "--json",
        ],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    )
    result = orjson.loads(out.stdout)
    after = (data / "secret.key").read_text()
    assert result["resealed"] == 1 and after != before
    assert result["key_id"] == key_id(after.strip().encode())
    assert (data / "secret.key").stat().st_mode & 0o077 == 0
