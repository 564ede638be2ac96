"""Alembic environment: runs on the connection fairmeter hands it (SQLite or PostgreSQL)."""

from alembic import context

from fairmeter.storage.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
