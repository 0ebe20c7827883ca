"""Alembic migrations of the registry schema, run by :func:`canaryflow.registry.db.migrate`."""
