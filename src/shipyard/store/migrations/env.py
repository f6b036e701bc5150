"""Alembic environment: always driven from :func:`shipyard.store.db.migrate`,
which hands over a connection already inside a locked transaction."""

from alembic import context

from shipyard.store.schema import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
context.run_migrations()
