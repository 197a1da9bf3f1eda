"""The Chef identities: a user or client name with its public key, for signed requests."""

from __future__ import annotations

import sqlalchemy as sa

from jobyard.store.schema import _id, _ref, _ts, metadata

# One Chef identity of an organization (Chef's user or client name), standing for a
# jobyard user. ``role`` narrows the member's role (``agent`` for a node's client key);
# NULL means the member's role at the time of each request.
chef_keys = sa.Table(
    "chef_keys",
    metadata,
    _id(),
    _ref("org_id", "organizations.id"),
    _ref("user_id", "users.id"),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("role", sa.String(16)),
    sa.Column("public_key", sa.Text(), nullable=False),
    _ts("created_at", False),
    sa.UniqueConstraint("org_id", "name"),
)
