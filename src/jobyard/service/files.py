"""Where output files' bytes live: a directory under the data dir, behind a small interface."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterable
from dataclasses import dataclass
from pathlib import Path

from jobyard.domain.errors import TooLarge


@dataclass(frozen=True)
class Stored:
    key: str
    size: int
    md5: str
    sha256: str


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

    async def put_stream(self, chunks: AsyncIterable[bytes], limit: int, what: str) -> Stored:
        """Write chunks to disk as they arrive, hashing them; past ``limit`` bytes the
        partial file is removed and TooLarge raised (nothing is kept)."""
        key = f"{uuid.uuid4().hex[:2]}/{uuid.uuid4().hex}"
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
        size = 0
        try:
            with open(tmp, "wb") as fh:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > limit:
                        raise TooLarge(f"{what} is over the {limit}-byte upload limit")
                    md5.update(chunk)
                    sha.update(chunk)
                    fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return Stored(key, size, md5.hexdigest(), sha.hexdigest())

    def path(self, key: str) -> Path:
        """Where a stored file's bytes are (to stream them)."""
        return self._path(key)

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)
