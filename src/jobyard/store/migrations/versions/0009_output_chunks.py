"""output_chunks: a run's stdout and stderr as append-only chunks; the old
node_runs.stdout/stderr values move into them (one head chunk per non-empty stream)

Revision ID: 0009_output_chunks
Revises: 0001

"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_output_chunks"
down_revision = "0001"
branch_labels = None
depends_on = None

BATCH = 200


def upgrade() -> None:
    op.create_table(
        "output_chunks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("stream", sa.String(length=6), nullable=False),
        sa.Column("byte_pos", sa.BigInteger(), nullable=False),
        sa.Column("line_pos", sa.BigInteger(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("head", sa.Boolean(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["node_runs.id"],
            name=op.f("fk_output_chunks_run_id_node_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_output_chunks")),
        sa.UniqueConstraint(
            "run_id",
            "stream",
            "head",
            "byte_pos",
            name=op.f("uq_output_chunks_run_id_stream_head_byte_pos"),
        ),
    )
    _move_old_output()
    # A plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35): rebuilding node_runs in batch
    # mode would drop the old table, and with it, by cascade, the chunks just written.
    op.drop_column("node_runs", "stdout")
    op.drop_column("node_runs", "stderr")


def _move_old_output() -> None:
    conn = op.get_bind()
    runs = sa.table(
        "node_runs", sa.column("id", sa.BigInteger()), sa.column("stdout"), sa.column("stderr")
    )
    chunks = sa.table(
        "output_chunks",
        *(sa.column(n) for n in ("run_id", "stream", "byte_pos", "line_pos", "size", "lines")),
        sa.column("head", sa.Boolean()),
        sa.column("data"),
    )
    after = 0
    while True:
        rows = conn.execute(
            sa.select(runs.c.id, runs.c.stdout, runs.c.stderr)
            .where(runs.c.id > after, sa.or_(runs.c.stdout != "", runs.c.stderr != ""))
            .order_by(runs.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        values = [
            {
                "run_id": run_id,
                "stream": stream,
                "byte_pos": 0,
                "line_pos": 0,
                "size": len(text.encode()),
                "lines": text.count("\n"),
                "head": True,
                "data": text,
            }
            for run_id, out, err in rows
            for stream, text in (("stdout", out), ("stderr", err))
            if text
        ]
        conn.execute(chunks.insert(), values)
        after = rows[-1][0]


def downgrade() -> None:
    op.add_column("node_runs", sa.Column("stdout", sa.Text(), server_default="", nullable=False))
    op.add_column("node_runs", sa.Column("stderr", sa.Text(), server_default="", nullable=False))
    op.drop_table("output_chunks")
