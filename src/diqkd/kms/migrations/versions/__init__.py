"""Alembic revisions of the key store, oldest first."""
