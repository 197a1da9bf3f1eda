"""Key files in the data directory: made once, readable by this user only."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path


def _private(path: Path, text: str) -> Path:
    """``text`` written beside ``path`` in a new file of mode 0600; answers its name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    return tmp


def read_or_create(path: Path, make: Callable[[], str]) -> str:
    """The content of ``path``, made with ``make()`` if there is none yet.

    Written aside then linked into place: a concurrent reader never sees a half-written
    file, and if another process won the race, its content is the one everybody uses.
    """
    try:
        return path.read_text()
    except FileNotFoundError:
        pass
    text = make()
    tmp = _private(path, text)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return path.read_text()
    finally:
        tmp.unlink()
    return text


def replace(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically (mode 0600)."""
    os.replace(_private(path, text), path)
