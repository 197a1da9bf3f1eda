"""Each organization's retention policy (``domain/retention.py``)."""

from __future__ import annotations

import sqlalchemy as sa

from jobyard.store.schema import _ts, metadata

retention_policies = sa.Table(
    "retention_policies",
    metadata,
    sa.Column(
        "org_id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        sa.ForeignKey("organizations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("keep_jobs_days", sa.Integer()),
    sa.Column("keep_output_days", sa.Integer()),
    _ts("updated_at", False),
)
