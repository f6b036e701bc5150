"""Alembic environment: always driven from :func:`shipyard.store.db.migrate`,
which hands over a connection already inside a locked transaction."""

from alembic import context

from shipyard.store.schema_all import all_tables

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=all_tables(), render_as_batch=True)
context.run_migrations()
