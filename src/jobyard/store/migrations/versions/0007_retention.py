"""retention_policies: how long each organization keeps finished jobs and their output

Revision ID: 0007_retention
Revises: 0001

"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from jobyard.store.schema import UTCDateTime

revision = "0007_retention"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "retention_policies",
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("keep_jobs_days", sa.Integer(), nullable=True),
        sa.Column("keep_output_days", sa.Integer(), nullable=True),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_retention_policies_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_retention_policies")),
    )


def downgrade() -> None:
    op.drop_table("retention_policies")
