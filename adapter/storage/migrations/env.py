"""Alembic environment: runs on the connection :func:`adapter.storage.db.upgrade_schema` gives."""
from alembic import context
from sqlalchemy import text

from adapter.storage.orm import Base

MIGRATION_LOCK = 0x504D4341  # "PMCA": one migrator at a time on PostgreSQL

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    if connection.dialect.name == "postgresql":
        # `serve` and `worker` may start together: the second waits, then finds nothing to do
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    context.run_migrations()
