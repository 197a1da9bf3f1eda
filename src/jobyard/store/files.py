"""Metadata of output files; the bytes live in a FileStorage."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from jobyard.domain.records import StoredFile
from jobyard.store.rows import record, records
from jobyard.store.schema import files


class FilesRepo:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def insert(self, values: dict[str, Any]) -> StoredFile:
        row = (
            (await self.conn.execute(files.insert().values(**values).returning(*files.c)))
            .mappings()
            .one()
        )
        return StoredFile(**row)

    async def of_job(self, job_id: int) -> list[StoredFile]:
        q = files.select().where(files.c.job_id == job_id).order_by(files.c.id)
        return records(StoredFile, (await self.conn.execute(q)).mappings())

    async def get(self, org_id: int, file_id: int) -> StoredFile | None:
        q = files.select().where(files.c.org_id == org_id, files.c.id == file_id)
        return record(StoredFile, (await self.conn.execute(q)).mappings().first())

    async def get_any(self, file_id: int) -> StoredFile | None:
        """A file by id whatever its organization (the caller checks who may read it)."""
        q = files.select().where(files.c.id == file_id)
        return record(StoredFile, (await self.conn.execute(q)).mappings().first())

    async def inputs(self, org_id: int, offset: int, limit: int) -> tuple[list[StoredFile], int]:
        where = (files.c.org_id == org_id, files.c.kind == "input")
        q = files.select().where(*where).order_by(files.c.id.desc()).offset(offset).limit(limit)
        total = (
            await self.conn.execute(sa.select(sa.func.count()).select_from(files).where(*where))
        ).scalar_one()
        return records(StoredFile, (await self.conn.execute(q)).mappings()), int(total)

    async def run_total(self, job_id: int, node: str) -> int:
        q = sa.select(sa.func.coalesce(sa.func.sum(files.c.size), 0)).where(
            files.c.job_id == job_id, files.c.node_name == node
        )
        return int((await self.conn.execute(q)).scalar_one())

    async def delete_of_job(self, job_id: int) -> list[str]:
        keys = [f.storage_key for f in await self.of_job(job_id)]
        await self.conn.execute(files.delete().where(files.c.job_id == job_id))
        return keys
