"""Alembic migrations of the key store (run through ``KeyStore.migrate``)."""
