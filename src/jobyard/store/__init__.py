"""Persistence behind a narrow interface: SQLAlchemy Core on SQLite or PostgreSQL."""

from jobyard.store.database import Database, Tx

__all__ = ["Database", "Tx"]
