"""Every table of jobyard, once. Alembic migrations are generated from this metadata."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware datetimes in, aware UTC datetimes out, on SQLite as on PostgreSQL."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value if value.tzinfo is dt.UTC else value.astimezone(dt.UTC)

    def result_processor(self, dialect: Any, coltype: Any) -> Any:
        # process_result_value fused with the driver type's own processor: one call per
        # value instead of TypeDecorator's two (every timestamp of every row read).
        impl = self.impl_instance.dialect_impl(dialect).result_processor(dialect, coltype)
        utc = dt.UTC

        def process(value: Any) -> dt.datetime | None:
            if impl is not None:
                value = impl(value)
            if value is None:
                return None
            if value.tzinfo is None:
                return value.replace(tzinfo=utc)  # type: ignore[no-any-return]
            return value if value.tzinfo is utc else value.astimezone(utc)  # type: ignore[no-any-return]

        if dialect.name != "sqlite":
            return process
        parse = dt.datetime.fromisoformat

        def from_text(value: str | None) -> dt.datetime | None:
            # SQLite keeps UTC as naive ISO text: parsed aware in one C call, five times
            # quicker than the dialect's pattern then a replace (anything else: as before).
            if value is None:
                return None
            try:
                out = parse(value + "+00:00")
            except (TypeError, ValueError):
                return process(value)
            return out if out.tzinfo is utc else process(value)  # "2026-01-02+00:00": naive

        return from_text


def _id() -> sa.Column[int]:
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True)


def _ref(
    name: str, target: str, nullable: bool = False, ondelete: str = "CASCADE"
) -> sa.Column[int]:
    return sa.Column(
        name,
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        sa.ForeignKey(target, ondelete=ondelete),
        nullable=nullable,
    )


def org_key() -> sa.Column[int]:
    """The key of a table of one row per organization (gone with it)."""
    column = _ref("org_id", "organizations.id")
    column.primary_key = True
    return column


def _ts(name: str, nullable: bool = True) -> sa.Column[dt.datetime]:
    return sa.Column(name, UTCDateTime(), nullable=nullable)


organizations = sa.Table(
    "organizations",
    metadata,
    _id(),
    sa.Column("name", sa.String(63), nullable=False, unique=True),
    sa.Column("display_name", sa.String(200), nullable=False),
    _ts("created_at", False),
)

users = sa.Table(
    "users",
    metadata,
    _id(),
    sa.Column("email", sa.String(254), nullable=False, unique=True),
    sa.Column("display_name", sa.String(200), nullable=False),
    sa.Column("password_hash", sa.String(200)),
    _ts("created_at", False),
)

memberships = sa.Table(
    "memberships",
    metadata,
    _id(),
    _ref("org_id", "organizations.id"),
    _ref("user_id", "users.id"),
    sa.Column("role", sa.String(16), nullable=False),
    _ts("created_at", False),
    sa.UniqueConstraint("org_id", "user_id"),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    _id(),
    _ref("org_id", "organizations.id"),
    _ref("user_id", "users.id"),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("role", sa.String(16)),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    _ts("created_at", False),
    _ts("expires_at"),
    _ts("revoked_at"),
    _ts("last_used_at"),
)

# Dashboard (and Kragle log-in) sessions: the cookie carries only a random id; this row, found
# by the id's SHA-256, says who signed in and in which organization, until it expires or is
# revoked (sign-out, a password change, removal from the organization).
web_sessions = sa.Table(
    "web_sessions",
    metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),
    _ref("user_id", "users.id"),
    _ref("org_id", "organizations.id"),
    _ts("created_at", False),
    _ts("last_seen_at", False),
    _ts("expires_at", False),
    _ts("revoked_at"),
    sa.Index("ix_web_sessions_user_id", "user_id"),
)

clusters = sa.Table(
    "clusters",
    metadata,
    _id(),
    _ref("org_id", "organizations.id"),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("description", sa.Text(), nullable=False, server_default=""),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("desired_nodes", sa.Integer(), nullable=False),
    sa.Column("type", sa.String(16), nullable=False, server_default="production"),
    sa.Column("terminate_on_idle", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("time_to_idle", sa.Integer(), nullable=False, server_default="3600"),
    _ref("created_by", "users.id", nullable=True, ondelete="SET NULL"),
    _ts("created_at", False),
    _ts("updated_at", False),
    _ts("available_since"),
    _ts("terminated_at"),
    sa.UniqueConstraint("org_id", "name"),
)

nodes = sa.Table(
    "nodes",
    metadata,
    _id(),
    _ref("org_id", "organizations.id"),
    sa.Column("name", sa.String(253), nullable=False),
    sa.Column("tags", sa.JSON(), nullable=False),
    sa.Column("cluster", sa.String(200)),
    sa.Column("online", sa.Boolean(), nullable=False),
    sa.Column("busy", sa.Boolean(), nullable=False),
    # Said hello on a live connection (False while reconnecting after a server restart).
    sa.Column("connected", sa.Boolean(), server_default=sa.false(), nullable=False),
    # Runs its agent takes at once (--slots), as its latest hello said.
    sa.Column("slots", sa.Integer(), server_default="1", nullable=False),
    sa.Column("incarnation", sa.String(64)),
    sa.Column("replica", sa.String(64)),
    _ts("last_heartbeat"),
    _ts("created_at", False),
    _ts("updated_at", False),
    sa.UniqueConstraint("org_id", "name"),
)

# One row: this database's identity, made on first use. Agents key their journal by it, so
# a job id of a re-created database is never mistaken for one an agent ran before.
server_identity = sa.Table(
    "server_identity",
    metadata,
    sa.Column("slot", sa.Integer(), primary_key=True),
    sa.Column("server_id", sa.String(64), nullable=False),
    _ts("created_at", False),
)

jobs = sa.Table(
    "jobs",
    metadata,
    _id(),
    _ref("org_id", "organizations.id"),
    sa.Column("name", sa.String(200)),
    sa.Column("description", sa.Text(), nullable=False, server_default=""),
    sa.Column("command", sa.Text(), nullable=False),
    sa.Column("argv", sa.JSON()),
    sa.Column("target", sa.JSON(), nullable=False),
    sa.Column("quorum", sa.String(16), nullable=False),
    sa.Column("run_timeout", sa.Integer()),
    sa.Column("env", sa.JSON(), nullable=False),
    sa.Column("dir", sa.Text()),
    sa.Column("capture_output", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("attempt", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("meta", sa.JSON(), nullable=False),
    # What kind of job: script (runs on nodes), approval, input, notification.
    sa.Column("kind", sa.String(16), nullable=False, server_default="script"),
    # The open-ended result word (TheEye's "state": success, failure, or a script's own word).
    sa.Column("state", sa.String(64)),
    sa.Column("result", sa.JSON()),
    sa.Column("arguments", sa.JSON()),
    sa.Column("task_id", sa.BigInteger()),
    sa.Column("trigger_id", sa.BigInteger()),
    sa.Column("cluster_id", sa.BigInteger()),
    _ref("created_by", "users.id", nullable=True, ondelete="SET NULL"),
    _ts("created_at", False),
    _ts("updated_at", False),
    _ts("submitted_at"),
    _ts("started_at"),
    _ts("finished_at"),
    _ts("deadline"),
    sa.Index("ix_jobs_org_created", "org_id", "created_at", "id"),
    sa.Index("ix_jobs_org_status", "org_id", "status"),
    sa.Index("ix_jobs_org_name", "org_id", "name"),
    sa.Index("ix_jobs_active_deadline", "status", "deadline"),
)

# Each organization's number of jobs, kept by the database (triggers on jobs: migration
# 0010_org_job_counts): the unfiltered job list's total without counting the history.
org_job_counts = sa.Table(
    "org_job_counts",
    metadata,
    org_key(),
    sa.Column("jobs", sa.BigInteger(), nullable=False),
)

node_runs = sa.Table(
    "node_runs",
    metadata,
    _id(),
    _ref("job_id", "jobs.id"),
    _ref("org_id", "organizations.id"),
    sa.Column("node_name", sa.String(253), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("attempt", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("exit_code", sa.Integer()),
    sa.Column("reason", sa.Text()),
    # Output is in output_chunks; set once some of it was dropped between head and tail.
    sa.Column("truncated", sa.Boolean(), nullable=False, server_default=sa.false()),
    _ts("created_at", False),
    _ts("updated_at", False),
    _ts("started_at"),
    _ts("finished_at"),
    sa.UniqueConstraint("job_id", "node_name"),
    sa.Index("ix_node_runs_org_node_status", "org_id", "node_name", "status"),
)

# A run's stdout and stderr: append-only pieces, never rewritten (domain/outputs.py).
output_chunks = sa.Table(
    "output_chunks",
    metadata,
    _id(),
    _ref("run_id", "node_runs.id"),
    sa.Column("stream", sa.String(6), nullable=False),  # stdout | stderr
    sa.Column("byte_pos", sa.BigInteger(), nullable=False),  # bytes before it in the stream
    sa.Column("line_pos", sa.BigInteger(), nullable=False),  # newlines before it in the stream
    sa.Column("size", sa.Integer(), nullable=False),  # its UTF-8 bytes
    sa.Column("lines", sa.Integer(), nullable=False),  # its newlines
    sa.Column("head", sa.Boolean(), nullable=False),  # part of the kept head (never trimmed)
    sa.Column("data", sa.Text(), nullable=False),
    sa.UniqueConstraint("run_id", "stream", "head", "byte_pos"),
)

events = sa.Table(
    "events",
    metadata,
    _id(),
    _ref("org_id", "organizations.id"),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("subject_id", sa.BigInteger(), nullable=False),
    sa.Column("job_id", sa.BigInteger()),
    sa.Column("node_name", sa.String(253)),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("from_status", sa.String(32)),
    sa.Column("to_status", sa.String(32)),
    sa.Column("actor", sa.String(254)),
    sa.Column("reason", sa.Text()),
    sa.Column("data", sa.JSON()),
    _ts("created_at", False),
    sa.Index("ix_events_subject", "kind", "subject_id", "id"),
    sa.Index("ix_events_org_id", "org_id", "id"),
    sa.Index("ix_events_job", "job_id", "id"),
)

files = sa.Table(
    "files",
    metadata,
    _id(),
    _ref("org_id", "organizations.id"),
    # An input file is uploaded before any job: no job, no node; jobs name it by id.
    _ref("job_id", "jobs.id", nullable=True),
    sa.Column("node_name", sa.String(253), nullable=False),
    sa.Column("name", sa.String(1024), nullable=False),
    sa.Column("size", sa.BigInteger(), nullable=False),
    sa.Column("md5", sa.String(32), nullable=False),
    sa.Column("storage_key", sa.String(1024), nullable=False),
    _ts("created_at", False),
    sa.Column("sha256", sa.String(64)),
    sa.Column("kind", sa.String(16), nullable=False, server_default="output"),  # output | input
    sa.Column("uploaded_by", sa.BigInteger().with_variant(sa.Integer(), "sqlite")),
    sa.Index("ix_files_job", "job_id", "id"),
    sa.Index("ix_files_org_kind", "org_id", "kind", "id"),
)
