"""nodes.slots: how many runs the node's agent takes at once (its ``--slots``, sent in hello)

Revision ID: 0009_agent_node_slots
Revises: 0005_sec_agent_node_connected

"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_agent_node_slots"
down_revision = "0005_sec_agent_node_connected"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(sa.Column("slots", sa.Integer(), server_default="1", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("slots")
