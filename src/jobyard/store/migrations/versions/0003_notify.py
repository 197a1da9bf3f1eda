"""watchers, shares, notification settings, webhook subscriptions, outbox, in-app inbox

Revision ID: 0003_notify
Revises: 0001

"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from jobyard.store.schema import UTCDateTime

revision = "0003_notify"
down_revision = "0001"
branch_labels = None
depends_on = None


def _id() -> sa.Column[int]:
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False)


def _ref(name: str, nullable: bool = False) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=nullable)


def _ts(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, UTCDateTime(timezone=True), nullable=nullable)


def _fk(table: str, column: str, target: str, ondelete: str = "CASCADE") -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{target}.id"],
        name=op.f(f"fk_{table}_{column}_{target}"),
        ondelete=ondelete,
    )


def upgrade() -> None:
    op.create_table(
        "watchers",
        _id(),
        _ref("org_id"),
        _ref("job_id", True),
        _ref("cluster_id", True),
        _ref("user_id"),
        _ts("created_at", False),
        _fk("watchers", "org_id", "organizations"),
        _fk("watchers", "job_id", "jobs"),
        _fk("watchers", "cluster_id", "clusters"),
        _fk("watchers", "user_id", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_watchers")),
        sa.UniqueConstraint("job_id", "user_id", name=op.f("uq_watchers_job_id_user_id")),
        sa.UniqueConstraint("cluster_id", "user_id", name=op.f("uq_watchers_cluster_id_user_id")),
    )
    op.create_table(
        "job_shares",
        _id(),
        _ref("org_id"),
        _ref("job_id"),
        _ref("user_id"),
        _ref("shared_by", True),
        sa.Column("message", sa.Text(), server_default="", nullable=False),
        _ts("created_at", False),
        _fk("job_shares", "org_id", "organizations"),
        _fk("job_shares", "job_id", "jobs"),
        _fk("job_shares", "user_id", "users"),
        _fk("job_shares", "shared_by", "users", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_shares")),
        sa.UniqueConstraint("job_id", "user_id", name=op.f("uq_job_shares_job_id_user_id")),
    )
    op.create_index("ix_job_shares_user", "job_shares", ["user_id", "job_id"])
    op.create_table(
        "notification_settings",
        _id(),
        _ref("user_id"),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("in_app", sa.Boolean(), nullable=False),
        sa.Column("email", sa.Boolean(), nullable=False),
        _ts("updated_at", False),
        _fk("notification_settings", "user_id", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_settings")),
        sa.UniqueConstraint("user_id", "kind", name=op.f("uq_notification_settings_user_id_kind")),
    )
    op.create_table(
        "webhook_subscriptions",
        _id(),
        _ref("org_id"),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("event_types", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        _ts("disabled_at"),
        _ts("last_success_at"),
        _ts("last_failure_at"),
        _ref("created_by", True),
        _ts("created_at", False),
        _ts("updated_at", False),
        _fk("webhook_subscriptions", "org_id", "organizations"),
        _fk("webhook_subscriptions", "created_by", "users", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_subscriptions")),
    )
    op.create_index("ix_webhook_subscriptions_org", "webhook_subscriptions", ["org_id", "id"])
    op.create_table(
        "outbox",
        _id(),
        _ref("org_id"),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        _ref("user_id", True),
        _ref("subscription_id", True),
        sa.Column("key", sa.String(length=160), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        _ts("next_attempt_at", False),
        sa.Column("last_error", sa.Text(), nullable=True),
        _ts("created_at", False),
        _ts("updated_at", False),
        _ts("sent_at"),
        _fk("outbox", "subscription_id", "webhook_subscriptions"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("key", name=op.f("uq_outbox_key")),
    )
    op.create_index("ix_outbox_due", "outbox", ["status", "next_attempt_at"])
    op.create_index("ix_outbox_org", "outbox", ["org_id", "id"])
    only_webhooks = sa.text("subscription_id IS NOT NULL")
    op.create_index(
        "ix_outbox_subscription",
        "outbox",
        ["subscription_id", "id"],
        postgresql_where=only_webhooks,
        sqlite_where=only_webhooks,
    )
    op.create_table(
        "notifications",
        _id(),
        _ref("org_id"),
        _ref("user_id"),
        sa.Column("key", sa.String(length=160), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("subject_kind", sa.String(length=16), nullable=False),
        sa.Column("subject_id", sa.BigInteger(), nullable=False),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        _ts("read_at"),
        _ts("created_at", False),
        _ts("updated_at", False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("key", name=op.f("uq_notifications_key")),
    )
    op.create_index("ix_notifications_inbox", "notifications", ["user_id", "id"])
    op.create_index("ix_notifications_unread", "notifications", ["user_id", "read_at"])


def downgrade() -> None:
    op.drop_table("notifications")
    op.drop_table("outbox")
    op.drop_table("webhook_subscriptions")
    op.drop_table("notification_settings")
    op.drop_table("job_shares")
    op.drop_table("watchers")
