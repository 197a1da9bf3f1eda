"""nodes.connected: the node's agent has said hello on a live connection since it last
went away or the server restarted (until then the node is reconnecting, not available)

Revision ID: 0005_sec_agent_node_connected
Revises: 0004_sec_agent_server_identity

"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_sec_agent_node_connected"
down_revision = "0004_sec_agent_server_identity"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(
            sa.Column("connected", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("connected")
