"""Where output files' bytes live: a directory under the data dir, behind a small interface."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path


class FileStorage:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not str(path).startswith(str(self.root.resolve())):
            raise ValueError("storage key escapes the storage root")
        return path

    def put(self, data: bytes) -> tuple[str, str]:
        """Store bytes; return (key, md5)."""
        key = f"{uuid.uuid4().hex[:2]}/{uuid.uuid4().hex}"
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return key, hashlib.md5(data, usedforsecurity=False).hexdigest()

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)
