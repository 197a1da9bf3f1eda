"""managed_definitions: the definitions that files manage (jobyard apply)

Revision ID: 0006_managed_definitions
Revises: 0001

"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from jobyard.store.schema import UTCDateTime

revision = "0006_managed_definitions"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "managed_definitions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=2000), nullable=False),
        sa.Column("source", sa.String(length=1000), nullable=False),
        sa.Column("applied_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_managed_definitions_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_managed_definitions")),
        sa.UniqueConstraint(
            "org_id", "kind", "key", name=op.f("uq_managed_definitions_org_id_kind_key")
        ),
    )


def downgrade() -> None:
    op.drop_table("managed_definitions")
