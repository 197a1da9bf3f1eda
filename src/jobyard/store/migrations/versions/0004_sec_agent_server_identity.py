"""server identity: one id per database, sent to agents so that each keeps one journal per server

Revision ID: 0004_sec_agent_server_identity
Revises: 0001

"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from jobyard.store.schema import UTCDateTime

revision = "0004_sec_agent_server_identity"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "server_identity",
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("server_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("slot", name=op.f("pk_server_identity")),
    )


def downgrade() -> None:
    op.drop_table("server_identity")
