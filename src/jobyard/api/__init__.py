"""HTTP: native routers under /api/v1, dialect routers under /compat/<dialect>."""
