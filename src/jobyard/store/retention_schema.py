"""Each organization's retention policy (``domain/retention.py``)."""

from __future__ import annotations

import sqlalchemy as sa

from jobyard.store.schema import _ts, metadata, org_key

retention_policies = sa.Table(
    "retention_policies",
    metadata,
    org_key(),
    sa.Column("keep_jobs_days", sa.Integer()),
    sa.Column("keep_output_days", sa.Integer()),
    _ts("updated_at", False),
)
