"""Imports every schema module so that ``metadata`` knows every table (Alembic reads it)."""

from jobyard.store import notify_schema, schema, tasks_schema

metadata = schema.metadata

__all__ = ["metadata", "notify_schema", "tasks_schema"]
