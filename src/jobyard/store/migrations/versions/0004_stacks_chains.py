"""stacks as chains of steps, stack runs and their steps, stack webhooks

Revision ID: 0004_stacks_chains
Revises: 0002_tasks

"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from jobyard.store.schema import UTCDateTime

revision = "0004_stacks_chains"
down_revision = "0002_tasks"
branch_labels = None
depends_on = None

_BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("stacks") as batch:
        batch.add_column(sa.Column("steps", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("on_failure", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("webhook", sa.String(length=8), nullable=True))
        batch.add_column(sa.Column("webhook_method", sa.String(length=8), nullable=True))
        batch.add_column(sa.Column("webhook_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("webhook_prefix", sa.String(length=16), nullable=True))
        batch.add_column(
            sa.Column("public", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.create_unique_constraint(op.f("uq_stacks_webhook_hash"), ["webhook_hash"])
    op.create_table(
        "stack_runs",
        sa.Column("id", _BIG, nullable=False),
        sa.Column("org_id", _BIG, nullable=False),
        sa.Column("stack_id", sa.BigInteger(), nullable=True),
        sa.Column("stack_name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("on_failure", sa.JSON(), nullable=True),
        sa.Column("env", sa.JSON(), nullable=False),
        sa.Column("target", sa.JSON(), nullable=False),
        sa.Column("trigger_id", sa.BigInteger(), nullable=True),
        sa.Column("created_by", sa.BigInteger(), nullable=True),
        sa.Column("actor", sa.String(length=254), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_stack_runs_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stack_runs")),
    )
    op.create_index("ix_stack_runs_org", "stack_runs", ["org_id", "id"])
    op.create_index("ix_stack_runs_status", "stack_runs", ["status"])
    op.create_table(
        "stack_run_steps",
        sa.Column("stack_run_id", _BIG, nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["stack_run_id"],
            ["stack_runs.id"],
            name=op.f("fk_stack_run_steps_stack_run_id_stack_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("stack_run_id", "idx", name=op.f("pk_stack_run_steps")),
        sa.UniqueConstraint("job_id", name=op.f("uq_stack_run_steps_job_id")),
    )


def downgrade() -> None:
    op.drop_table("stack_run_steps")
    op.drop_index("ix_stack_runs_status", table_name="stack_runs")
    op.drop_index("ix_stack_runs_org", table_name="stack_runs")
    op.drop_table("stack_runs")
    with op.batch_alter_table("stacks") as batch:
        batch.drop_constraint(op.f("uq_stacks_webhook_hash"), type_="unique")
        for column in (
            "public",
            "webhook_prefix",
            "webhook_hash",
            "webhook_method",
            "webhook",
            "on_failure",
            "steps",
        ):
            batch.drop_column(column)
