"""What the figures were measured on: CPU, memory, kernel, Python, library and server versions."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import shutil
import socket
import sqlite3
import subprocess
from typing import Any

PACKAGES = (
    "jobyard",
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "websockets",
    "sqlalchemy",
    "asyncpg",
    "aiosqlite",
    "pydantic",
    "orjson",
    "pgqueuer",
    "celery",
    "redis",
    "py-spy",
)


def _cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory() -> str:
    with contextlib.suppress(OSError), open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                kib = int(line.split()[1])
                return f"{kib / 1024 / 1024:.1f} GiB"
    return "unknown"


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _command_output(*argv: str) -> str:
    if shutil.which(argv[0]) is None:
        return "not installed"
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else "unavailable"


def _redis_version(host: str = "127.0.0.1", port: int = 6379) -> str:
    try:
        with socket.create_connection((host, port), timeout=2) as s:
            s.sendall(b"INFO server\r\n")
            data = s.recv(65536).decode(errors="replace")
    except OSError:
        return "not reachable"
    for line in data.splitlines():
        if line.startswith("redis_version:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def machine_load() -> str:
    """The 1, 5 and 15 minute load averages: other work on the machine skews every figure."""
    with contextlib.suppress(OSError), open("/proc/loadavg") as fh:
        return " ".join(fh.read().split()[:3])
    return "unknown"


def describe(pg_admin_url: str | None = None) -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory": _memory(),
        "kernel": platform.release(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "sqlite": sqlite3.sqlite_version,
        "postgresql": _command_output("psql", "--version"),
        "redis": _redis_version(),
        "wrk": _command_output("wrk", "--version"),
        "load average at start": machine_load(),
    }
    if pg_admin_url:
        info["postgresql_server"] = _command_output(
            "psql", pg_admin_url, "-Atc", "SHOW server_version"
        )
    info["packages"] = {p: _version(p) for p in PACKAGES}
    return info


def print_machine(info: dict[str, Any]) -> None:
    print("## Machine\n")
    for key, value in info.items():
        if key == "packages":
            continue
        print(f"- {key}: {value}")
    print("- packages: " + ", ".join(f"{k} {v}" for k, v in info["packages"].items()))
    print(flush=True)
