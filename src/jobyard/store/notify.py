"""Watchers, shares and notification settings: who is told, and through which channels.

The outbox, the in-app inbox and webhook subscriptions live in ``store/outbox.py``;
``NotifyStore`` gathers both under ``tx.notify``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from jobyard.domain.notifications import Prefs, Share, Watcher
from jobyard.store.notify_schema import job_shares, notification_settings, watchers
from jobyard.store.outbox import InboxRepo, OutboxRepo, WebhooksRepo, insert_ignore
from jobyard.store.schema import clusters, jobs, node_runs, users
from jobyard.store.tasks_schema import stack_runs

# The statements of ``WatchersRepo.add_creators``, built once per dialect and kind.
_ADD_CREATORS: dict[tuple[str, str], Any] = {}

# Whether any job is shared with a user (parameter ``user_id``).
HAS_SHARES = (
    sa.select(job_shares.c.id).where(job_shares.c.user_id == sa.bindparam("user_id")).limit(1)
)


def _subject(kind: str) -> sa.Column[int]:
    if kind == "job":
        return watchers.c.job_id
    if kind == "cluster":
        return watchers.c.cluster_id
    if kind == "stack_run":
        return watchers.c.stack_run_id
    raise ValueError(f"nothing of kind {kind!r} can be watched")


def _with_prefs(kind: str) -> Any:
    """Users joined with their settings row for ``kind`` (absent: the defaults)."""
    return users.outerjoin(
        notification_settings,
        sa.and_(
            notification_settings.c.user_id == users.c.id,
            notification_settings.c.kind == kind,
        ),
    )


# A query of ``(user_id, in_app, email_on)``: the people to tell and their channels.
Audience = sa.Select[Any]


def audience_of_watchers(kind: str, subject_id: int, notif_kind: str) -> Audience:
    """Who watches a subject, with their channels for ``notif_kind``: a query of
    ``(user_id, in_app, email_on)`` that the outbox turns into rows inside the database."""
    col = _subject(kind)
    return (
        sa.select(*_audience_cols)
        .select_from(_with_prefs(notif_kind).join(watchers, watchers.c.user_id == users.c.id))
        .where(col == subject_id)
    )


def audience_of_users(user_ids: Sequence[int], notif_kind: str) -> Audience:
    """Named users (approvers, a share's recipient) with their channels for ``notif_kind``."""
    return (
        sa.select(*_audience_cols)
        .select_from(_with_prefs(notif_kind))
        .where(users.c.id.in_(list(user_ids)))
    )


_audience_cols = (
    users.c.id.label("user_id"),
    sa.func.coalesce(notification_settings.c.in_app, sa.true()).label("in_app"),
    sa.func.coalesce(notification_settings.c.email, sa.true()).label("email_on"),
)


class WatchersRepo:
    def __init__(self, conn: AsyncConnection, dialect: str) -> None:
        self.conn = conn
        self.dialect = dialect

    async def add(
        self, org_id: int, kind: str, subject_id: int, user_id: int, now: dt.datetime
    ) -> tuple[dt.datetime, bool]:
        """Watch (idempotent); returns when the watch began and whether it is new."""
        col = _subject(kind)
        res = await self.conn.execute(
            insert_ignore(self.dialect, watchers, col.name, "user_id").values(
                {"org_id": org_id, col.name: subject_id, "user_id": user_id, "created_at": now}
            )
        )
        since = (
            await self.conn.execute(
                sa.select(watchers.c.created_at).where(
                    col == subject_id, watchers.c.user_id == user_id
                )
            )
        ).scalar_one()
        return since, bool(res.rowcount)

    async def add_creator(self, kind: str, subject_id: int, now: dt.datetime) -> None:
        """The creator of a job or cluster watches it (one statement, no read first)."""
        await self.add_creators(kind, [subject_id], now)

    async def add_creators(self, kind: str, subject_ids: Sequence[int], now: dt.datetime) -> None:
        """The creators of several jobs or clusters watch them, in one statement."""
        stmt = _ADD_CREATORS.get((self.dialect, kind))
        if stmt is None:
            source = {"job": jobs, "cluster": clusters, "stack_run": stack_runs}[kind]
            col = _subject(kind)
            pick = sa.select(
                source.c.org_id,
                source.c.id,
                source.c.created_by,
                sa.bindparam("now", type_=watchers.c.created_at.type),
            ).where(
                source.c.id.in_(sa.bindparam("ids", expanding=True)),
                source.c.created_by.is_not(None),
            )
            stmt = insert_ignore(self.dialect, watchers, col.name, "user_id").from_select(
                ["org_id", col.name, "user_id", "created_at"], pick
            )
            _ADD_CREATORS[(self.dialect, kind)] = stmt
        await self.conn.execute(stmt, {"ids": list(subject_ids), "now": now})

    async def remove(self, kind: str, subject_id: int, user_id: int) -> bool:
        col = _subject(kind)
        res = await self.conn.execute(
            watchers.delete().where(col == subject_id, watchers.c.user_id == user_id)
        )
        return bool(res.rowcount)

    async def of(self, kind: str, subject_id: int) -> list[Watcher]:
        """Who watches a job or cluster, in the order they started."""
        col = _subject(kind)
        q = (
            sa.select(
                watchers.c.user_id, users.c.email, users.c.display_name, watchers.c.created_at
            )
            .join(users, users.c.id == watchers.c.user_id)
            .where(col == subject_id)
            .order_by(watchers.c.id)
        )
        return [Watcher(**row) for row in (await self.conn.execute(q)).mappings()]


class SharesRepo:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def put(
        self,
        org_id: int,
        job_id: int,
        user_id: int,
        shared_by: int | None,
        message: str,
        now: dt.datetime,
    ) -> bool:
        """Share a job with a user, or renew the message of an existing share; True if new."""
        res = await self.conn.execute(
            job_shares.update()
            .where(job_shares.c.job_id == job_id, job_shares.c.user_id == user_id)
            .values(message=message, shared_by=shared_by)
        )
        if res.rowcount:
            return False
        await self.conn.execute(
            job_shares.insert().values(
                org_id=org_id,
                job_id=job_id,
                user_id=user_id,
                shared_by=shared_by,
                message=message,
                created_at=now,
            )
        )
        return True

    async def remove(self, job_id: int, user_id: int) -> bool:
        res = await self.conn.execute(
            job_shares.delete().where(
                job_shares.c.job_id == job_id, job_shares.c.user_id == user_id
            )
        )
        return bool(res.rowcount)

    async def is_shared(self, job_id: int, user_id: int) -> bool:
        q = sa.select(job_shares.c.id).where(
            job_shares.c.job_id == job_id, job_shares.c.user_id == user_id
        )
        return (await self.conn.execute(q)).first() is not None

    async def of_job(self, job_id: int) -> list[Share]:
        q = (
            sa.select(
                job_shares.c.job_id,
                job_shares.c.user_id,
                users.c.email,
                users.c.display_name,
                job_shares.c.message,
                job_shares.c.shared_by,
                job_shares.c.created_at,
            )
            .join(users, users.c.id == job_shares.c.user_id)
            .where(job_shares.c.job_id == job_id)
            .order_by(job_shares.c.id)
        )
        return [Share(**row) for row in (await self.conn.execute(q)).mappings()]

    async def emails_of_jobs(
        self, job_ids: Sequence[int], org_id: int, viewer_id: int
    ) -> dict[int, list[str]]:
        """For each job the viewer can read (of ``org_id`` or shared with them), the emails
        it is shared with, in the order shared (Rescale's ``sharedWith``)."""
        if not job_ids:
            return {}
        readable = sa.select(jobs.c.id).where(
            jobs.c.id.in_(list(job_ids)),
            sa.or_(jobs.c.org_id == org_id, jobs.c.id.in_(shared_job_ids(viewer_id))),
        )
        out: dict[int, list[str]] = {i: [] for i in (await self.conn.execute(readable)).scalars()}
        if not out:
            return out
        q = (
            sa.select(job_shares.c.job_id, users.c.email)
            .join(users, users.c.id == job_shares.c.user_id)
            .where(job_shares.c.job_id.in_(list(out)))
            .order_by(job_shares.c.id)
        )
        for row in (await self.conn.execute(q)).mappings():
            out[row["job_id"]].append(row["email"])
        return out


def shared_job_ids(user_id: int) -> sa.Select[tuple[int]]:
    """Subquery: ids of the jobs shared with a user (for visibility in job lists)."""
    return sa.select(job_shares.c.job_id).where(job_shares.c.user_id == user_id)


class PrefsRepo:
    def __init__(self, conn: AsyncConnection, dialect: str) -> None:
        self.conn = conn
        self.dialect = dialect

    async def of_user(self, user_id: int) -> dict[str, Prefs]:
        """The rows a user saved, by kind (kinds without a row use the defaults)."""
        q = sa.select(
            notification_settings.c.kind,
            notification_settings.c.in_app,
            notification_settings.c.email,
        ).where(notification_settings.c.user_id == user_id)
        return {
            row["kind"]: Prefs(row["kind"], bool(row["in_app"]), bool(row["email"]))
            for row in (await self.conn.execute(q)).mappings()
        }

    async def put(self, user_id: int, prefs: Sequence[Prefs], now: dt.datetime) -> None:
        for p in prefs:
            res = await self.conn.execute(
                notification_settings.update()
                .where(
                    notification_settings.c.user_id == user_id,
                    notification_settings.c.kind == p.kind,
                )
                .values(in_app=p.in_app, email=p.email, updated_at=now)
            )
            if not res.rowcount:
                await self.conn.execute(
                    notification_settings.insert().values(
                        user_id=user_id, kind=p.kind, in_app=p.in_app, email=p.email, updated_at=now
                    )
                )


class NotifyStore:
    """Every notification repository of one transaction: ``tx.notify.watchers`` ..."""

    def __init__(self, conn: AsyncConnection, dialect: str) -> None:
        self.conn = conn
        self.watchers = WatchersRepo(conn, dialect)
        self.shares = SharesRepo(conn)
        self.prefs = PrefsRepo(conn, dialect)
        self.outbox = OutboxRepo(conn, dialect)
        self.inbox = InboxRepo(conn, dialect)
        self.webhooks = WebhooksRepo(conn)

    async def run_states(self, job_id: int) -> list[str]:
        """The states of a job's node runs, without their output (a finished job's verdict)."""
        q = sa.select(node_runs.c.status).where(node_runs.c.job_id == job_id)
        return [str(s) for s in (await self.conn.execute(q)).scalars()]

    async def job_name(self, job_id: int) -> str | None:
        """A job's name alone (notification titles), without its heavy columns."""
        q = sa.select(jobs.c.name).where(jobs.c.id == job_id)
        value = (await self.conn.execute(q)).scalar()
        return None if value is None else str(value)

    async def contacts(self, user_ids: Sequence[int]) -> dict[int, tuple[str, str]]:
        """Email address and display name of users, by id (for sending emails)."""
        if not user_ids:
            return {}
        q = sa.select(users.c.id, users.c.email, users.c.display_name).where(
            users.c.id.in_(list(user_ids))
        )
        return {
            row["id"]: (row["email"], row["display_name"])
            for row in (await self.conn.execute(q)).mappings()
        }

    async def has_shares(self, user_id: int) -> bool:
        """Whether any job is shared with the user (job lists widen only then)."""
        return (await self.conn.execute(HAS_SHARES, {"user_id": user_id})).first() is not None
