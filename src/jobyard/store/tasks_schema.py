"""Tables of tasks, schedules, stacks and triggers, and of what their runs wait for."""

from __future__ import annotations

import sqlalchemy as sa

from jobyard.store.schema import _id, _ref, _ts, metadata

tasks = sa.Table(
    "tasks",
    metadata,
    _id(),
    _ref("org_id", "organizations.id"),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("description", sa.Text(), nullable=False, server_default=""),
    sa.Column("command", sa.Text(), nullable=False, server_default=""),
    sa.Column("argv", sa.JSON()),
    sa.Column("target", sa.JSON()),
    sa.Column("quorum", sa.String(16), nullable=False),
    sa.Column("run_timeout", sa.Integer()),
    sa.Column("env", sa.JSON(), nullable=False),
    sa.Column("dir", sa.Text()),
    sa.Column("arguments", sa.JSON(), nullable=False),
    sa.Column("approvers", sa.JSON(), nullable=False),
    sa.Column("approve_label", sa.String(64), nullable=False),
    sa.Column("reject_label", sa.String(64), nullable=False),
    sa.Column("allow_self_approval", sa.Boolean(), nullable=False),
    sa.Column("message", sa.Text(), nullable=False, server_default=""),
    sa.Column("recipients", sa.JSON(), nullable=False),
    sa.Column("cancellable", sa.Boolean(), nullable=False),
    sa.Column("hold_timeout", sa.Integer()),
    sa.Column("retry", sa.JSON(), nullable=False),
    sa.Column("concurrency", sa.JSON(), nullable=False),
    # The anonymous trigger secret: only its SHA-256 is stored, with a short prefix to show.
    sa.Column("secret_hash", sa.String(64), unique=True),
    sa.Column("secret_prefix", sa.String(16)),
    _ts("secret_rotated_at"),
    _ref("created_by", "users.id", nullable=True, ondelete="SET NULL"),
    _ts("created_at", False),
    _ts("updated_at", False),
    sa.UniqueConstraint("org_id", "name"),
)

schedules = sa.Table(
    "schedules",
    metadata,
    _id(),
    _ref("org_id", "organizations.id"),
    sa.Column("name", sa.String(200)),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("cron", sa.String(200)),
    sa.Column("timezone", sa.String(64), nullable=False, server_default="UTC"),
    sa.Column("period", sa.Integer()),
    _ts("start"),
    _ts("at"),
    _ref("created_by", "users.id", nullable=True, ondelete="SET NULL"),
    _ts("created_at", False),
    _ts("updated_at", False),
    sa.UniqueConstraint("org_id", "name"),
)

stacks = sa.Table(
    "stacks",
    metadata,
    _id(),
    _ref("org_id", "organizations.id"),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("description", sa.Text(), nullable=False, server_default=""),
    sa.Column("target", sa.JSON(), nullable=False),
    sa.Column("env", sa.JSON(), nullable=False),
    _ref("task_id", "tasks.id", nullable=True, ondelete="RESTRICT"),
    sa.Column("command", sa.Text()),
    _ref("created_by", "users.id", nullable=True, ondelete="SET NULL"),
    _ts("created_at", False),
    _ts("updated_at", False),
    # A chain of steps (NULL: the one-step case, the task or command above) and the step
    # that runs when the chain stops on a failure.
    sa.Column("steps", sa.JSON()),
    sa.Column("on_failure", sa.JSON()),
    # Webhook (Kragle): public | token | user, GET or POST; the token only as a SHA-256.
    sa.Column("webhook", sa.String(8)),
    sa.Column("webhook_method", sa.String(8)),
    sa.Column("webhook_hash", sa.String(64), unique=True),
    sa.Column("webhook_prefix", sa.String(16)),
    # Readable without authentication (the public shape only) for its organization.
    sa.Column("public", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.UniqueConstraint("org_id", "name"),
)

# One run of a chain: its status and the chain as it was when the run started.
stack_runs = sa.Table(
    "stack_runs",
    metadata,
    _id(),
    _ref("org_id", "organizations.id"),
    sa.Column("stack_id", sa.BigInteger()),
    sa.Column("stack_name", sa.String(200), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("steps", sa.JSON(), nullable=False),
    sa.Column("on_failure", sa.JSON()),
    sa.Column("env", sa.JSON(), nullable=False),
    sa.Column("target", sa.JSON(), nullable=False),
    sa.Column("trigger_id", sa.BigInteger()),
    sa.Column("created_by", sa.BigInteger()),
    sa.Column("actor", sa.String(254)),
    sa.Column("reason", sa.Text()),
    _ts("created_at", False),
    _ts("updated_at", False),
    _ts("finished_at"),
    sa.Index("ix_stack_runs_org", "org_id", "id"),
    sa.Index("ix_stack_runs_status", "status"),
)

# The job of each started step. UNIQUE (run, idx) is what makes a step start once, however
# many writers (an observer, the sweep after a restart, another replica) try to start it.
stack_run_steps = sa.Table(
    "stack_run_steps",
    metadata,
    _ref("stack_run_id", "stack_runs.id"),
    sa.Column("idx", sa.Integer(), nullable=False),
    sa.Column("job_id", sa.BigInteger(), nullable=False, unique=True),
    _ts("created_at", False),
    sa.PrimaryKeyConstraint("stack_run_id", "idx"),
)

triggers = sa.Table(
    "triggers",
    metadata,
    _id(),
    _ref("org_id", "organizations.id"),
    sa.Column("name", sa.String(200)),
    _ref("task_id", "tasks.id", nullable=True, ondelete="RESTRICT"),
    _ref("stack_id", "stacks.id", nullable=True, ondelete="RESTRICT"),
    _ref("schedule_id", "schedules.id", ondelete="RESTRICT"),
    sa.Column("enabled", sa.Boolean(), nullable=False),
    sa.Column("overlap", sa.JSON(), nullable=False),
    sa.Column("catch_up", sa.String(8), nullable=False),
    sa.Column("catch_up_window", sa.Integer(), nullable=False),
    sa.Column("arguments", sa.JSON(), nullable=False),
    # Kragle's do_del: deleted instead of run at its next time.
    sa.Column("do_del", sa.Boolean(), nullable=False, server_default=sa.false()),
    _ts("next_fire_at"),
    _ts("last_slot"),
    _ref("created_by", "users.id", nullable=True, ondelete="SET NULL"),
    _ts("created_at", False),
    _ts("updated_at", False),
    sa.UniqueConstraint("org_id", "name"),
    sa.Index("ix_triggers_due", "enabled", "next_fire_at"),
)

# One row per slot a trigger handled: the UNIQUE pair is what makes a slot fire once,
# across restarts and across servers sharing one database.
trigger_fires = sa.Table(
    "trigger_fires",
    metadata,
    _id(),
    _ref("trigger_id", "triggers.id"),
    sa.Column("org_id", sa.BigInteger(), nullable=False),
    _ts("slot_time", False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("job_id", sa.BigInteger()),
    sa.Column("reason", sa.Text()),
    _ts("created_at", False),
    sa.UniqueConstraint("trigger_id", "slot_time"),
    sa.Index("ix_trigger_fires_slot", "slot_time"),
)

# Where a job came from (task, trigger, stack, attempt) and what it waits for while onhold.
task_runs = sa.Table(
    "task_runs",
    metadata,
    _ref("job_id", "jobs.id"),
    sa.Column("org_id", sa.BigInteger(), nullable=False),
    sa.Column("task_id", sa.BigInteger()),
    sa.Column("trigger_id", sa.BigInteger()),
    sa.Column("stack_id", sa.BigInteger()),
    sa.Column("try_no", sa.Integer(), nullable=False, server_default="1"),
    sa.Column("first_job_id", sa.BigInteger()),
    # queue | retry | approval | input, or NULL when the job waits for nothing.
    sa.Column("hold", sa.String(16)),
    _ts("release_at"),
    sa.Column("requested_by", sa.BigInteger()),
    sa.Column("approvers", sa.JSON()),
    _ts("created_at", False),
    sa.PrimaryKeyConstraint("job_id"),
    sa.Index("ix_task_runs_task_hold", "task_id", "hold"),
    sa.Index("ix_task_runs_trigger_hold", "trigger_id", "hold"),
    sa.Index("ix_task_runs_hold_release", "hold", "release_at"),
)

# Input a running command asked for (through its agent), answered by a person or expired.
input_requests = sa.Table(
    "input_requests",
    metadata,
    _id(),
    sa.Column("org_id", sa.BigInteger(), nullable=False),
    _ref("job_id", "jobs.id"),
    sa.Column("node_name", sa.String(253), nullable=False),
    sa.Column("attempt", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("prompt", sa.Text(), nullable=False, server_default=""),
    sa.Column("fields", sa.JSON(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("answer", sa.JSON()),
    sa.Column("answered_by", sa.String(254)),
    _ts("deadline"),
    _ts("created_at", False),
    _ts("answered_at"),
    sa.Index("ix_input_requests_job", "job_id", "status"),
    sa.Index("ix_input_requests_open", "status", "deadline"),
)
