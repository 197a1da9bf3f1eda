"""input files: uploads that belong to no job yet, a sha256 for every file, a kind

Revision ID: 0005_rescale_files
Revises: 0001

"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_rescale_files"
down_revision = "0001"
branch_labels = None
depends_on = None

_BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("files") as batch:
        batch.alter_column("job_id", existing_type=_BIG, nullable=True)
        batch.add_column(sa.Column("sha256", sa.String(length=64), nullable=True))
        batch.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="output")
        )
        batch.add_column(sa.Column("uploaded_by", _BIG, nullable=True))
        batch.create_index("ix_files_org_kind", ["org_id", "kind", "id"])


def downgrade() -> None:
    with op.batch_alter_table("files") as batch:
        batch.drop_index("ix_files_org_kind")
        batch.drop_column("uploaded_by")
        batch.drop_column("kind")
        batch.drop_column("sha256")
