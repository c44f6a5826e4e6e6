"""Alembic environment of the key store: runs on the connection that ``KeyStore.migrate`` passes.

Run only through :meth:`diqkd.kms.store.KeyStore.migrate`; there is no ``alembic.ini``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from diqkd.kms._store_schema import VERSION_TABLE, metadata

# A lock key of our own, so that two processes migrating one PostgreSQL database take turns.
_PG_LOCK_KEY = 0x6469716B64


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
        transactional_ddl=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run the key store's migrations through KeyStore.migrate()")
_run(connection)
