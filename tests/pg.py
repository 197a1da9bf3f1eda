"""A PostgreSQL server for the tests.

The machine's server at 127.0.0.1:5432 when it answers; else a throwaway server
started from the PostgreSQL binaries; under CI, failing both is an error, not a skip.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator

import pytest


def _port_open(host: str, port: int) -> bool:
    with contextlib.closing(socket.socket()) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _psql_ok(dsn: str) -> bool:
    import asyncio

    import asyncpg

    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(dsn, timeout=3)
        except Exception:
            return False
        await conn.close()
        return True

    return asyncio.run(probe())


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _throwaway() -> Iterator[str]:
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    initdb = shutil.which("initdb") or (bins[-1] if bins else None)
    if initdb is None:
        raise RuntimeError("no PostgreSQL binaries (initdb) found")
    bindir = os.path.dirname(initdb)
    root = tempfile.mkdtemp(prefix="jobyard-pg-")
    data = os.path.join(root, "data")
    port = _free_port()
    user_args: list[str] = []
    if os.geteuid() == 0:
        # PostgreSQL refuses to run as root: hand the directory to the postgres user.
        subprocess.run(["chown", "-R", "postgres", root], check=True)
        user_args = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*user_args, initdb, "-D", data, "-A", "trust", "-U", "postgres"],
        check=True,
        capture_output=True,
    )
    proc = subprocess.Popen(
        [
            *user_args,
            os.path.join(bindir, "postgres"),
            "-D",
            data,
            "-p",
            str(port),
            "-k",
            root,
            "-h",
            "127.0.0.1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not _port_open("127.0.0.1", port):
            if time.monotonic() > deadline:
                raise RuntimeError("throwaway PostgreSQL did not start")
            time.sleep(0.1)
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def server() -> Iterator[str]:
    """Yield the URL of an admin database on some PostgreSQL server."""
    env_url = os.environ.get("JOBYARD_TEST_PG")
    if env_url:
        yield env_url
        return
    local = "postgresql://postgres@127.0.0.1:5432/test"
    if _port_open("127.0.0.1", 5432) and _psql_ok(local):
        yield local
        return
    try:
        with _throwaway() as url:
            yield url
            return
    except RuntimeError as exc:
        if os.environ.get("CI"):
            raise RuntimeError(
                f"PostgreSQL is required under CI and none could be had: {exc}"
            ) from exc
        pytest.skip(f"no PostgreSQL available: {exc}")


def create_database(admin_url: str, template: str | None = None) -> str:
    """Create a fresh database on the server (a copy of ``template`` if given); its URL."""
    import asyncio

    import asyncpg

    name = f"jobyard_test_{uuid.uuid4().hex[:12]}"

    async def make() -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            copy = f' TEMPLATE "{template}"' if template else ""
            await conn.execute(f'CREATE DATABASE "{name}"{copy}')
        finally:
            await conn.close()

    asyncio.run(make())
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


def drop_database(admin_url: str, url: str) -> None:
    import asyncio

    import asyncpg

    name = url.rpartition("/")[2]

    async def drop() -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())
