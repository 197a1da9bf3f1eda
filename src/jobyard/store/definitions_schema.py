"""Which definitions are managed by files (``jobyard apply``), and from which source."""

from __future__ import annotations

import sqlalchemy as sa

from jobyard.store.schema import _id, _ref, _ts, metadata

# One row per definition that ``jobyard apply`` created or updated: the dashboard marks
# it, and ``apply --prune`` removes only what files once managed and no longer name.
managed_definitions = sa.Table(
    "managed_definitions",
    metadata,
    _id(),
    _ref("org_id", "organizations.id"),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("key", sa.String(2000), nullable=False),
    sa.Column("source", sa.String(1000), nullable=False),
    _ts("applied_at", False),
    sa.UniqueConstraint("org_id", "kind", "key"),
)
