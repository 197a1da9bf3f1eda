"""The delivery outbox, the in-app inbox and webhook subscriptions.

Relays claim due outbox rows with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
several replicas share the work without sending a row twice; on SQLite the single
writer lock does the same. A claimed row is ``sending`` with ``next_attempt_at`` set
to the end of its lease: if the relay dies, the row is due again when the lease ends.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from jobyard.domain.notifications import (
    Delivery,
    DeliveryStatus,
    Notification,
    Subscription,
)
from jobyard.domain.records import Page
from jobyard.store.notify_schema import (
    job_shares,
    notifications,
    outbox,
    webhook_subscriptions,
)
from jobyard.store.rows import record, records
from jobyard.store.schema import users

_DUE = (DeliveryStatus.PENDING.value, DeliveryStatus.SENDING.value)


def insert_ignore(dialect: str, table: sa.Table, *conflict: str) -> Any:
    """``INSERT ... ON CONFLICT (conflict) DO NOTHING`` on SQLite and PostgreSQL."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(table).on_conflict_do_nothing(index_elements=list(conflict))


class OutboxRepo:
    def __init__(self, conn: AsyncConnection, dialect: str) -> None:
        self.conn = conn
        self.dialect = dialect

    async def add_many(self, rows: Sequence[dict[str, Any]]) -> None:
        """Queue deliveries; a key queued before (the same event twice) is skipped."""
        if rows:
            await self.conn.execute(insert_ignore(self.dialect, outbox, "key"), list(rows))

    def _due(self, channels: Sequence[str], now: dt.datetime, limit: int) -> Any:
        q = (
            sa.select(outbox.c.id)
            .where(
                outbox.c.status.in_(_DUE),
                outbox.c.next_attempt_at <= now,
                outbox.c.channel.in_(list(channels)),
            )
            .order_by(outbox.c.next_attempt_at, outbox.c.id)
            .limit(limit)
        )
        if self.dialect == "postgresql":
            q = q.with_for_update(skip_locked=True)
        return q

    async def any_due(self, channels: Sequence[str], now: dt.datetime) -> bool:
        """Whether a row is due (read first: an idle relay takes no write lock)."""
        q = (
            sa.select(outbox.c.id)
            .where(
                outbox.c.status.in_(_DUE),
                outbox.c.next_attempt_at <= now,
                outbox.c.channel.in_(list(channels)),
            )
            .limit(1)
        )
        return (await self.conn.execute(q)).first() is not None

    async def claim(
        self, channels: Sequence[str], now: dt.datetime, lease_until: dt.datetime, limit: int
    ) -> list[Delivery]:
        """Take due rows for sending: ``sending`` until ``lease_until``; counts the attempt."""
        stmt = (
            outbox.update()
            .where(outbox.c.id.in_(self._due(channels, now, limit).scalar_subquery()))
            .values(
                status=DeliveryStatus.SENDING.value,
                attempts=outbox.c.attempts + 1,
                next_attempt_at=lease_until,
                updated_at=now,
            )
            .returning(*outbox.c)
        )
        rows = records(Delivery, (await self.conn.execute(stmt)).mappings())
        return sorted(rows, key=lambda d: d.id)

    async def add_for_audience(
        self,
        audience: sa.Select[Any],
        channel: str,
        *,
        org_id: int,
        event_id: int,
        kind: str,
        payload: dict[str, Any],
        now: dt.datetime,
    ) -> int:
        """Queue a row for every member of ``audience`` (``user_id, in_app, email_on``) who
        wants ``channel``: one INSERT ... SELECT, however many people; returns how many."""
        a = audience.subquery()
        wants = a.c.in_app if channel == "in_app" else a.c.email_on
        c = outbox.c
        pick = sa.select(
            sa.literal(org_id, c.org_id.type),
            sa.literal(event_id, c.event_id.type),
            sa.literal(kind, c.kind.type),
            sa.literal(channel, c.channel.type),
            a.c.user_id,
            sa.literal(f"{event_id}.{channel}.u", sa.String) + sa.cast(a.c.user_id, sa.String),
            sa.literal(payload, c.payload.type),
            sa.literal("pending", c.status.type),
            sa.literal(0, c.attempts.type),
            sa.literal(now, c.next_attempt_at.type),
            sa.literal(now, c.created_at.type),
            sa.literal(now, c.updated_at.type),
        ).where(wants)
        names = [
            "org_id", "event_id", "kind", "channel", "user_id", "key", "payload", "status",
            "attempts", "next_attempt_at", "created_at", "updated_at",
        ]  # fmt: skip
        stmt = insert_ignore(self.dialect, outbox, "key").from_select(names, pick)
        return int((await self.conn.execute(stmt)).rowcount or 0)

    async def take(
        self, channels: Sequence[str], now: dt.datetime, limit: int
    ) -> list[tuple[int, int | None]]:
        """Due rows' ids and users, locked for the rest of this transaction (delivered in it)."""
        ids = list((await self.conn.execute(self._due(channels, now, limit))).scalars())
        if not ids:
            return []
        q = sa.select(outbox.c.id, outbox.c.user_id).where(outbox.c.id.in_(ids))
        return [(row[0], row[1]) for row in (await self.conn.execute(q)).all()]

    async def mark_sent(
        self, ids: Sequence[int], now: dt.datetime, attempted: bool = False
    ) -> None:
        if not ids:
            return
        values: dict[str, Any] = {
            "status": DeliveryStatus.SENT.value,
            "sent_at": now,
            "updated_at": now,
            "last_error": None,
        }
        if not attempted:
            values["attempts"] = outbox.c.attempts + 1
        await self.conn.execute(outbox.update().where(outbox.c.id.in_(list(ids))).values(values))

    async def delete(self, ids: Sequence[int]) -> None:
        if ids:
            await self.conn.execute(outbox.delete().where(outbox.c.id.in_(list(ids))))

    async def retry_later(
        self, delivery_id: int, when: dt.datetime, error: str, now: dt.datetime
    ) -> None:
        await self.conn.execute(
            outbox.update()
            .where(outbox.c.id == delivery_id)
            .values(
                status=DeliveryStatus.PENDING.value,
                next_attempt_at=when,
                last_error=error[:2000],
                updated_at=now,
            )
        )

    async def fail(self, delivery_id: int, error: str, now: dt.datetime) -> None:
        """Give up on one delivery; it stays visible with its last error."""
        await self.conn.execute(
            outbox.update()
            .where(outbox.c.id == delivery_id)
            .values(status=DeliveryStatus.FAILED.value, last_error=error[:2000], updated_at=now)
        )

    async def fail_pending_of(self, subscription_id: int, error: str, now: dt.datetime) -> int:
        """Give up on every queued delivery of a disabled webhook subscription."""
        res = await self.conn.execute(
            outbox.update()
            .where(
                outbox.c.subscription_id == subscription_id,
                outbox.c.status == DeliveryStatus.PENDING.value,
            )
            .values(status=DeliveryStatus.FAILED.value, last_error=error[:2000], updated_at=now)
        )
        return int(res.rowcount or 0)

    async def requeue(self, org_id: int, delivery_id: int, now: dt.datetime) -> Delivery | None:
        """Try a failed delivery again from now, with a fresh attempt count."""
        stmt = (
            outbox.update()
            .where(
                outbox.c.org_id == org_id,
                outbox.c.id == delivery_id,
                outbox.c.status == DeliveryStatus.FAILED.value,
            )
            .values(
                status=DeliveryStatus.PENDING.value, attempts=0, next_attempt_at=now, updated_at=now
            )
            .returning(*outbox.c)
        )
        return record(Delivery, (await self.conn.execute(stmt)).mappings().first())

    async def get(self, org_id: int, delivery_id: int) -> Delivery | None:
        q = outbox.select().where(outbox.c.org_id == org_id, outbox.c.id == delivery_id)
        return record(Delivery, (await self.conn.execute(q)).mappings().first())

    async def page(
        self,
        org_id: int,
        *,
        user_id: int | None = None,
        subscription_id: int | None = None,
        statuses: Sequence[str] = (),
        channel: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> Page[Delivery]:
        """A page of an organization's deliveries, newest first."""
        conds: list[sa.ColumnElement[bool]] = [outbox.c.org_id == org_id]
        if user_id is not None:
            conds.append(outbox.c.user_id == user_id)
        if subscription_id is not None:
            conds.append(outbox.c.subscription_id == subscription_id)
        if statuses:
            conds.append(outbox.c.status.in_(list(statuses)))
        if channel is not None:
            conds.append(outbox.c.channel == channel)
        where = sa.and_(*conds)
        total = (
            await self.conn.execute(sa.select(sa.func.count()).select_from(outbox).where(where))
        ).scalar_one()
        q = outbox.select().where(where).order_by(outbox.c.id.desc()).offset(offset).limit(limit)
        return Page(records(Delivery, (await self.conn.execute(q)).mappings()), total)

    async def counts(self) -> dict[tuple[str, str], int]:
        """How many rows per (channel, status): for metrics and benchmarks."""
        q = sa.select(outbox.c.channel, outbox.c.status, sa.func.count()).group_by(
            outbox.c.channel, outbox.c.status
        )
        return {(c, s): int(n) for c, s, n in (await self.conn.execute(q)).all()}

    async def prune(self, before: dt.datetime) -> int:
        """Forget sent deliveries older than ``before``."""
        res = await self.conn.execute(
            outbox.delete().where(
                outbox.c.status == DeliveryStatus.SENT.value, outbox.c.updated_at < before
            )
        )
        return int(res.rowcount or 0)


class InboxRepo:
    def __init__(self, conn: AsyncConnection, dialect: str) -> None:
        self.conn = conn
        self.dialect = dialect

    async def add_from_outbox(self, ids: Sequence[int], now: dt.datetime) -> None:
        """Copy in-app outbox rows into inboxes, in the database; a key copied before is
        skipped (the notification's words are in the row's payload)."""
        if not ids:
            return
        p = outbox.c.payload
        pick = sa.select(
            outbox.c.org_id,
            outbox.c.user_id,
            outbox.c.key,
            outbox.c.kind,
            p["title"].as_string(),
            p["message"].as_string(),
            p["url"].as_string(),
            p["subject_kind"].as_string(),
            sa.cast(p["subject_id"].as_string(), sa.BigInteger),
            sa.cast(p["job_id"].as_string(), sa.BigInteger),
            outbox.c.event_id,
            sa.literal(now, notifications.c.created_at.type),
            sa.literal(now, notifications.c.updated_at.type),
        )
        # A recipient who is gone since the row was queued gets nothing.
        pick = (
            pick.join_from(outbox, users, users.c.id == outbox.c.user_id)
            .where(outbox.c.id.in_(list(ids)))
            .order_by(outbox.c.id)  # inbox ids follow the order things happened
        )
        names = [
            "org_id", "user_id", "key", "kind", "title", "message", "url", "subject_kind",
            "subject_id", "job_id", "event_id", "created_at", "updated_at",
        ]  # fmt: skip
        await self.conn.execute(
            insert_ignore(self.dialect, notifications, "key").from_select(names, pick)
        )

    def _mine(self, org_id: int, user_id: int) -> sa.ColumnElement[bool]:
        """One person's inbox as seen from one organization: its notifications, and those
        about jobs shared with the person from elsewhere."""
        shared = sa.select(job_shares.c.job_id).where(job_shares.c.user_id == user_id)
        return sa.and_(
            notifications.c.user_id == user_id,
            sa.or_(notifications.c.org_id == org_id, notifications.c.job_id.in_(shared)),
        )

    async def page(
        self,
        org_id: int,
        user_id: int,
        *,
        unread_first: bool = True,
        unread_only: bool = False,
        offset: int = 0,
        limit: int = 20,
    ) -> Page[Notification]:
        """A page of one inbox: newest first, unread ones before read ones if asked."""
        where = self._mine(org_id, user_id)
        if unread_only:
            where = sa.and_(where, notifications.c.read_at.is_(None))
        total = (
            await self.conn.execute(
                sa.select(sa.func.count()).select_from(notifications).where(where)
            )
        ).scalar_one()
        order: list[Any] = [notifications.c.id.desc()]
        if unread_first:
            order.insert(0, sa.case((notifications.c.read_at.is_(None), 0), else_=1))
        q = notifications.select().where(where).order_by(*order).offset(offset).limit(limit)
        return Page(records(Notification, (await self.conn.execute(q)).mappings()), total)

    async def unread(self, org_id: int, user_id: int) -> int:
        q = (
            sa.select(sa.func.count())
            .select_from(notifications)
            .where(self._mine(org_id, user_id), notifications.c.read_at.is_(None))
        )
        return int((await self.conn.execute(q)).scalar_one())

    async def get(self, org_id: int, user_id: int, notification_id: int) -> Notification | None:
        q = notifications.select().where(
            self._mine(org_id, user_id), notifications.c.id == notification_id
        )
        return record(Notification, (await self.conn.execute(q)).mappings().first())

    async def mark_read(
        self, org_id: int, user_id: int, ids: Sequence[int] | None, now: dt.datetime
    ) -> int:
        """Mark some (or, with None, all) unread notifications of an inbox read."""
        where = sa.and_(self._mine(org_id, user_id), notifications.c.read_at.is_(None))
        if ids is not None:
            where = sa.and_(where, notifications.c.id.in_(list(ids)))
        res = await self.conn.execute(
            notifications.update().where(where).values(read_at=now, updated_at=now)
        )
        return int(res.rowcount or 0)

    async def after(
        self, org_id: int, user_id: int, after_id: int, limit: int = 200
    ) -> list[Notification]:
        """Notifications of an inbox newer than an id, oldest first (stream replay)."""
        q = (
            notifications.select()
            .where(self._mine(org_id, user_id), notifications.c.id > after_id)
            .order_by(notifications.c.id)
            .limit(limit)
        )
        return records(Notification, (await self.conn.execute(q)).mappings())

    async def last_id(self, org_id: int, user_id: int) -> int:
        q = sa.select(sa.func.max(notifications.c.id)).where(self._mine(org_id, user_id))
        return int((await self.conn.execute(q)).scalar() or 0)

    async def count_keys(self, keys: Sequence[str]) -> int:
        q = sa.select(sa.func.count()).where(notifications.c.key.in_(list(keys)))
        return int((await self.conn.execute(q)).scalar_one())


def _subscription(row: sa.RowMapping | None) -> Subscription | None:
    if row is None:
        return None
    data = dict(row)
    data["event_types"] = list(data["event_types"] or [])
    return Subscription(**data)


class WebhooksRepo:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def insert(self, values: dict[str, Any]) -> Subscription:
        stmt = webhook_subscriptions.insert().values(**values).returning(*webhook_subscriptions.c)
        sub = _subscription((await self.conn.execute(stmt)).mappings().one())
        assert sub is not None
        return sub

    async def get(self, org_id: int, subscription_id: int) -> Subscription | None:
        q = webhook_subscriptions.select().where(
            webhook_subscriptions.c.org_id == org_id, webhook_subscriptions.c.id == subscription_id
        )
        return _subscription((await self.conn.execute(q)).mappings().first())

    async def get_any(self, subscription_id: int) -> Subscription | None:
        q = webhook_subscriptions.select().where(webhook_subscriptions.c.id == subscription_id)
        return _subscription((await self.conn.execute(q)).mappings().first())

    async def of_org(self, org_id: int, *, enabled_only: bool = False) -> list[Subscription]:
        q = webhook_subscriptions.select().where(webhook_subscriptions.c.org_id == org_id)
        if enabled_only:
            q = q.where(webhook_subscriptions.c.enabled.is_(True))
        out = []
        for row in (await self.conn.execute(q.order_by(webhook_subscriptions.c.id))).mappings():
            sub = _subscription(row)
            assert sub is not None
            out.append(sub)
        return out

    async def update(self, subscription_id: int, values: dict[str, Any]) -> Subscription:
        stmt = (
            webhook_subscriptions.update()
            .where(webhook_subscriptions.c.id == subscription_id)
            .values(**values)
            .returning(*webhook_subscriptions.c)
        )
        sub = _subscription((await self.conn.execute(stmt)).mappings().one())
        assert sub is not None
        return sub

    async def delete(self, subscription_id: int) -> None:
        await self.conn.execute(
            webhook_subscriptions.delete().where(webhook_subscriptions.c.id == subscription_id)
        )

    async def succeeded(self, subscription_id: int, now: dt.datetime) -> None:
        await self.conn.execute(
            webhook_subscriptions.update()
            .where(webhook_subscriptions.c.id == subscription_id)
            .values(consecutive_failures=0, last_success_at=now)
        )

    async def failed(self, subscription_id: int, now: dt.datetime) -> int:
        """Count one more failure in a row; returns the new count."""
        stmt = (
            webhook_subscriptions.update()
            .where(webhook_subscriptions.c.id == subscription_id)
            .values(
                consecutive_failures=webhook_subscriptions.c.consecutive_failures + 1,
                last_failure_at=now,
            )
            .returning(webhook_subscriptions.c.consecutive_failures)
        )
        return int((await self.conn.execute(stmt)).scalar() or 0)
