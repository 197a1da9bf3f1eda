"""Imports every schema module so that ``metadata`` knows every table (Alembic reads it)."""

from jobyard.store import (
    chef_schema,
    definitions_schema,
    notify_schema,
    retention_schema,
    schema,
    tasks_schema,
)

metadata = schema.metadata

__all__ = [
    "chef_schema",
    "definitions_schema",
    "metadata",
    "notify_schema",
    "retention_schema",
    "tasks_schema",
]
