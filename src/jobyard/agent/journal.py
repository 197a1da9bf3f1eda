"""What the agent keeps on disk so that a restart neither loses a result nor runs twice.

One journal per server identity (job ids are unique per server database only: a server
whose database was re-created, or another server, numbers its jobs from 1 again):

<state>/servers/<server id>/runs/<job>-<attempt>.json     written (fsync) before a command starts
<state>/servers/<server id>/results/<job>-<attempt>.json  a result until that server acks it
<state>/servers/<server id>/files/<job>-<attempt>/         its output files until each is sent

A journal an older agent kept directly under <state> (runs/, results/, files/) is adopted
by the first server identity this agent meets.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as fh:
        json.dump(data, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _name(job: int, attempt: int) -> str:
    return f"{job}-{attempt}.json"


_PARTS = ("runs", "results", "files")
_SERVER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def server_journal(state_dir: Path, server_id: str) -> Journal:
    """The journal of one server identity (adopting an older agent's unkeyed journal)."""
    if not _SERVER_ID.fullmatch(server_id):
        raise ValueError(f"the server sent an unusable identity {server_id[:80]!r}")
    root = state_dir / "servers" / server_id
    if not root.exists():
        legacy = [state_dir / part for part in _PARTS if (state_dir / part).is_dir()]
        root.mkdir(parents=True)
        for path in legacy:
            os.replace(path, root / path.name)
    return Journal(root)


def every_journal(state_dir: Path) -> list[Journal]:
    """Every journal kept under ``state_dir`` (for orphans an earlier incarnation left)."""
    roots = [state_dir] if any((state_dir / part).is_dir() for part in _PARTS) else []
    servers = state_dir / "servers"
    if servers.is_dir():
        roots += sorted(p for p in servers.iterdir() if p.is_dir())
    return [Journal(root) for root in roots]


class Journal:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.runs = root / "runs"
        self.results = root / "results"
        self.files = root / "files"
        for d in (self.runs, self.results, self.files):
            d.mkdir(parents=True, exist_ok=True)

    def started(self, job: int, attempt: int) -> dict[str, Any] | None:
        path = self.runs / _name(job, attempt)
        if not path.exists():
            return None
        with contextlib.suppress(ValueError, OSError):
            data: dict[str, Any] = json.loads(path.read_text())
            return data
        return {}

    def mark_started(self, job: int, attempt: int, info: dict[str, Any]) -> None:
        _write(self.runs / _name(job, attempt), info)

    def keep_result(self, job: int, attempt: int, result: dict[str, Any]) -> None:
        _write(self.results / _name(job, attempt), result)

    def result(self, job: int, attempt: int) -> dict[str, Any] | None:
        path = self.results / _name(job, attempt)
        if not path.exists():
            return None
        data: dict[str, Any] = json.loads(path.read_text())
        return data

    def acked(self, job: int, attempt: int) -> None:
        (self.results / _name(job, attempt)).unlink(missing_ok=True)
        self.files_sent(job, attempt)

    def keep_files(self, job: int, attempt: int, outputs: Path) -> None:
        """Move a finished run's output directory here (a rename: same file system)."""
        dest = self.files / f"{job}-{attempt}"
        shutil.rmtree(dest, ignore_errors=True)
        if outputs.is_dir() and any(p.is_file() for p in outputs.rglob("*")):
            os.replace(outputs, dest)

    def unsent_files(self, job: int, attempt: int) -> list[tuple[str, Path]]:
        """(relative name, path) of the run's files not sent yet, in name order."""
        root = self.files / f"{job}-{attempt}"
        paths = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
        return [(p.relative_to(root).as_posix(), p) for p in paths]

    def files_sent(self, job: int, attempt: int) -> None:
        shutil.rmtree(self.files / f"{job}-{attempt}", ignore_errors=True)

    def pending(self) -> list[dict[str, Any]]:
        out = []
        for path in sorted(self.results.glob("*.json")):
            with contextlib.suppress(ValueError, OSError):
                out.append(json.loads(path.read_text()))
        return out

    def orphans(self) -> list[dict[str, Any]]:
        """Runs started by an earlier incarnation that never recorded a result."""
        out = []
        for path in sorted(self.runs.glob("*.json")):
            job, _, attempt = path.stem.partition("-")
            if not (self.results / path.name).exists():
                with contextlib.suppress(ValueError, OSError):
                    info = json.loads(path.read_text())
                    info.update(job=int(job), attempt=int(attempt))
                    out.append(info)
        return out

    def forget(self, job: int, attempt: int) -> None:
        """Keep the started marker (never run twice) but note the run is settled."""
        path = self.runs / _name(job, attempt)
        info = self.started(job, attempt) or {}
        info["settled"] = True
        _write(path, info)
