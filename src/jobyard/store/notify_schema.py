"""Tables of watchers, shares, notifications, the delivery outbox and webhook subscriptions."""

from __future__ import annotations

import sqlalchemy as sa

from jobyard.store.schema import _id, _ref, _ts, metadata

# A user watching a job or a cluster (exactly one of job_id, cluster_id is set). The
# foreign keys cascade, so deleting a job or cluster forgets its watchers.
watchers = sa.Table(
    "watchers",
    metadata,
    _id(),
    _ref("org_id", "organizations.id"),
    _ref("job_id", "jobs.id", nullable=True),
    _ref("cluster_id", "clusters.id", nullable=True),
    _ref("user_id", "users.id"),
    _ts("created_at", False),
    # A run of a chained stack (migration 0005_stacks_watchers).
    _ref("stack_run_id", "stack_runs.id", nullable=True),
    sa.UniqueConstraint("job_id", "user_id"),
    sa.UniqueConstraint("cluster_id", "user_id"),
    sa.UniqueConstraint("stack_run_id", "user_id"),
)

# Read access to one job for one user, possibly of another organization (Rescale's share).
job_shares = sa.Table(
    "job_shares",
    metadata,
    _id(),
    _ref("org_id", "organizations.id"),
    _ref("job_id", "jobs.id"),
    _ref("user_id", "users.id"),
    _ref("shared_by", "users.id", nullable=True, ondelete="SET NULL"),
    sa.Column("message", sa.Text(), nullable=False, server_default=""),
    _ts("created_at", False),
    sa.UniqueConstraint("job_id", "user_id"),
    sa.Index("ix_job_shares_user", "user_id", "job_id"),
)

# A person's channel choice for one notification kind; no row means the defaults.
notification_settings = sa.Table(
    "notification_settings",
    metadata,
    _id(),
    _ref("user_id", "users.id"),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("in_app", sa.Boolean(), nullable=False),
    sa.Column("email", sa.Boolean(), nullable=False),
    _ts("updated_at", False),
    sa.UniqueConstraint("user_id", "kind"),
)

webhook_subscriptions = sa.Table(
    "webhook_subscriptions",
    metadata,
    _id(),
    _ref("org_id", "organizations.id"),
    sa.Column("url", sa.Text(), nullable=False),
    sa.Column("secret", sa.String(128), nullable=False),
    sa.Column("event_types", sa.JSON(), nullable=False),
    sa.Column("description", sa.Text(), nullable=False, server_default=""),
    sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("consecutive_failures", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("disabled_reason", sa.Text()),
    _ts("disabled_at"),
    _ts("last_success_at"),
    _ts("last_failure_at"),
    _ref("created_by", "users.id", nullable=True, ondelete="SET NULL"),
    _ts("created_at", False),
    _ts("updated_at", False),
    sa.Index("ix_webhook_subscriptions_org", "org_id", "id"),
)

# The transactional outbox: one row per recipient per channel, written in the event's
# transaction. ``key`` is the idempotency key (email Message-ID, webhook-id). For a
# ``sending`` row, ``next_attempt_at`` is the end of the relay's lease.
# A fan-out writes these rows by the thousand in one statement, so org_id and user_id
# carry no foreign key (a per-row check each); the relay skips a recipient who is gone.
outbox = sa.Table(
    "outbox",
    metadata,
    _id(),
    sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
    sa.Column("event_id", sa.BigInteger(), nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite")),
    _ref("subscription_id", "webhook_subscriptions.id", nullable=True),
    sa.Column("key", sa.String(160), nullable=False, unique=True),
    sa.Column("payload", sa.JSON(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    _ts("next_attempt_at", False),
    sa.Column("last_error", sa.Text()),
    _ts("created_at", False),
    _ts("updated_at", False),
    _ts("sent_at"),
    sa.Index("ix_outbox_due", "status", "next_attempt_at"),
    sa.Index("ix_outbox_org", "org_id", "id"),
    sa.Index(
        "ix_outbox_subscription",
        "subscription_id",
        "id",
        postgresql_where=sa.text("subscription_id IS NOT NULL"),
        sqlite_where=sa.text("subscription_id IS NOT NULL"),
    ),
)

# The in-app inbox. ``key`` is the outbox row's key: a relay that delivers twice
# (after a crash) inserts once. An inbox is read per person, then narrowed to an
# organization (and the jobs shared with the person), hence the indexes by user. Rows
# arrive by the thousand in one statement (a fan-out), which checks that the user exists,
# so no foreign key checks each row again (jobyard never deletes users).
notifications = sa.Table(
    "notifications",
    metadata,
    _id(),
    sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
    sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
    sa.Column("key", sa.String(160), nullable=False, unique=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("title", sa.String(300), nullable=False),
    sa.Column("message", sa.Text(), nullable=False),
    sa.Column("url", sa.Text()),
    sa.Column("subject_kind", sa.String(16), nullable=False),
    sa.Column("subject_id", sa.BigInteger(), nullable=False),
    sa.Column("job_id", sa.BigInteger()),
    sa.Column("event_id", sa.BigInteger(), nullable=False),
    _ts("read_at"),
    _ts("created_at", False),
    _ts("updated_at", False),
    sa.Index("ix_notifications_inbox", "user_id", "id"),
    sa.Index("ix_notifications_unread", "user_id", "read_at"),
)
