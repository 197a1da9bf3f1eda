"""watchers of stack runs

Revision ID: 0005_stacks_watchers
Revises: 0004_stacks_chains (and needs 0003_notify, where watchers is made)

"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_stacks_watchers"
down_revision = "0004_stacks_chains"
branch_labels = None
depends_on = "0003_notify"


def upgrade() -> None:
    with op.batch_alter_table("watchers") as batch:
        batch.add_column(
            sa.Column(
                "stack_run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
            )
        )
        batch.create_foreign_key(
            op.f("fk_watchers_stack_run_id_stack_runs"),
            "stack_runs",
            ["stack_run_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_unique_constraint(
            op.f("uq_watchers_stack_run_id_user_id"), ["stack_run_id", "user_id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("watchers") as batch:
        batch.drop_constraint(op.f("uq_watchers_stack_run_id_user_id"), type_="unique")
        batch.drop_constraint(op.f("fk_watchers_stack_run_id_stack_runs"), type_="foreignkey")
        batch.drop_column("stack_run_id")
